"""Requirements that say where their project comes from, wherever a tool may read one.

The guard judges downloads by the names they carry, and a URL's name proves nothing: a
`decoy @ https://host/helper-1.0.tar.gz` builds whatever its backend says, and a git
repository has no file name at all. So a requirement that names a location is judged
before the tool runs (`launch.run`): its project must not be one the private index
serves, unless the location is the private index itself. This module finds them, as pure
functions of text:

- `name @ URL` (PEP 508), with extras and markers;
- a bare URL: a wheel names its project in its file name; a VCS URL may name it in an
  `#egg=` fragment; any other remote requirement is *nameless* (`project == ""`), which
  the runner refuses while a private index is in play (write it as `name @ URL`);
- `-e URL` lines of requirements files;
- pyproject.toml: `[project]` dependencies, optional dependencies, `[dependency-groups]`,
  `[build-system] requires`, `[tool.uv]` override, constraint, dev and build-constraint
  dependencies, `[tool.uv.sources]` url/git/index pins, and poetry's url/git/source pins
  in `dependencies`, `dev-dependencies` and every group;
- PEP 723 inline script metadata (`# /// script`): its dependencies and `[tool.uv]`.

`file:` URLs and local paths are the user's own files and are not references.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from crane_launch.launch.plan import DirectReference
from crane_launch.proxy.routing import normalise_project

__all__ = [
    "pyproject_references",
    "requirement_reference",
    "script_metadata",
    "script_references",
]

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_NAMED = re.compile(rf"^({_NAME})\s*(?:\[[^\]]*\])?\s*@\s*(\S+)")
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EGG = re.compile(rf"(?:^|&)egg=({_NAME})")
_WHEEL_NAME = re.compile(r"^([^-/]+)-[^-/]+(?:-[^-/]+)?-[^-/]+-[^-/]+-[^-/]+\.whl$", re.I)
_SCRIPT = re.compile(r"(?m)^# /// script\s*$\n(?P<body>(?:^#(?: .*)?$\n)+?)^# ///\s*$")
_UV_LISTS = (
    "override-dependencies",
    "constraint-dependencies",
    "dev-dependencies",
    "build-constraint-dependencies",
)


def requirement_reference(text: str, place: str) -> DirectReference | None:
    """The location a requirement names (see the module docstring); None for a
    requirement that leaves the choice to the index, and for the user's own files."""
    text = text.strip()
    for prefix in ("-e ", "--editable ", "--editable="):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    named = _NAMED.match(text)
    if named is not None:
        url = named.group(2).rstrip(";")
        if not _is_remote(url):
            return None
        return DirectReference(normalise_project(named.group(1)), url, place)
    url = text.split()[0] if text else ""
    if not _is_remote(url):
        return None
    return DirectReference(_name_of_url(url), url, place)


def _is_remote(url: str) -> bool:
    return bool(_REMOTE.match(url)) and not url.lower().startswith("file:")


def _name_of_url(url: str) -> str:
    """The project a bare URL names: `#egg=`, or a wheel's file name; "" for none."""
    parts = urlsplit(url)
    egg = _EGG.search(parts.fragment)
    if egg is not None:
        return normalise_project(egg.group(1))
    wheel = _WHEEL_NAME.match(unquote(parts.path).rsplit("/", 1)[-1])
    return normalise_project(wheel.group(1)) if wheel is not None else ""


def _requirements(texts: Iterable[tuple[str, str]]) -> list[DirectReference]:
    return [
        reference
        for place, text in texts
        if (reference := requirement_reference(text, place)) is not None
    ]


def pyproject_references(
    data: Mapping[str, Any], place: str, index_urls: Mapping[str, str]
) -> list[DirectReference]:
    """The references of one pyproject.toml (`place` names it). `index_urls` maps index
    and source names to URLs (an unknown name stays as it is, and so never names the
    private index)."""
    found = _requirements(_pep508_lists(data, place))
    found += _uv_source_references(data, f"{place} [tool.uv.sources]", index_urls)
    found += _poetry_references(data, place, index_urls)
    return found


def _pep508_lists(data: Mapping[str, Any], place: str) -> list[tuple[str, str]]:
    project = _table(data, "project")
    uv = _table(data, "tool", "uv")
    lists: list[tuple[str, object]] = [
        ("[project] dependencies", project.get("dependencies")),
        ("[build-system] requires", _table(data, "build-system").get("requires")),
        *(
            (f"[project.optional-dependencies] {extra}", items)
            for extra, items in _table(project, "optional-dependencies").items()
        ),
        *(
            (f"[dependency-groups] {group}", items)
            for group, items in _table(data, "dependency-groups").items()
        ),
        *((f"[tool.uv] {key}", uv.get(key)) for key in _UV_LISTS),
    ]
    return [(f"{place} {where}", text) for where, items in lists for text in _strings(items)]


def _uv_source_references(
    data: Mapping[str, Any], place: str, index_urls: Mapping[str, str]
) -> list[DirectReference]:
    found: list[DirectReference] = []
    for name, entries in _table(data, "tool", "uv", "sources").items():
        for entry in entries if isinstance(entries, list) else [entries]:
            found += _pin(name, entry, place, index_urls, "index")
    return found


def _poetry_references(
    data: Mapping[str, Any], place: str, index_urls: Mapping[str, str]
) -> list[DirectReference]:
    poetry = _table(data, "tool", "poetry")
    tables = [
        ("dependencies", _table(poetry, "dependencies")),
        ("dev-dependencies", _table(poetry, "dev-dependencies")),
        *(
            (f"group.{group}.dependencies", _table(poetry, "group", group, "dependencies"))
            for group in _table(poetry, "group")
        ),
    ]
    found: list[DirectReference] = []
    for where, dependencies in tables:
        for name, entry in dependencies.items():
            for item in entry if isinstance(entry, list) else [entry]:
                found += _pin(name, item, f"{place} [tool.poetry.{where}]", index_urls, "source")
    return found


def _pin(
    name: str, entry: object, place: str, index_urls: Mapping[str, str], index_key: str
) -> list[DirectReference]:
    """A `[tool.uv.sources]` or poetry dependency entry that pins a location."""
    if not isinstance(entry, Mapping):
        return []
    project = normalise_project(name)
    url, git, index = entry.get("url"), entry.get("git"), entry.get(index_key)
    if isinstance(url, str):
        return [DirectReference(project, url, place)]
    if isinstance(git, str):
        return [DirectReference(project, git if "+" in git.split(":")[0] else "git+" + git, place)]
    if isinstance(index, str):
        return [DirectReference(project, index_urls.get(index, index), place, kind="index")]
    return []


def script_metadata(text: str) -> dict[str, Any] | None:
    """A script's PEP 723 `script` block as a table; None when it has none or it does not
    parse (the tool then refuses the script itself)."""
    match = _SCRIPT.search(text)
    if match is None:
        return None
    body = "".join(
        line[2:] if line.startswith("# ") else line[1:]
        for line in match.group("body").splitlines(keepends=True)
    )
    try:
        return tomllib.loads(body)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None


def script_references(text: str, place: str) -> list[DirectReference]:
    """The references of a script's PEP 723 metadata: its dependencies and `[tool.uv]`."""
    data = script_metadata(text)
    if data is None:
        return []
    found = _requirements(
        (f"{place} script dependencies", t) for t in _strings(data.get("dependencies"))
    )
    uv = _table(data, "tool", "uv")
    for key in _UV_LISTS:
        found += _requirements(
            (f"{place} script [tool.uv] {key}", t) for t in _strings(uv.get(key))
        )
    names = {
        str(index.get("name")): str(index.get("url"))
        for index in uv.get("index", [])
        if isinstance(index, dict) and isinstance(index.get("url"), str)
    }
    found += _uv_source_references(data, f"{place} script [tool.uv.sources]", names)
    return found


def _table(data: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    current: Any = data or {}
    for key in keys:
        current = current.get(key) if isinstance(current, Mapping) else None
    return dict(current) if isinstance(current, Mapping) else {}


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
