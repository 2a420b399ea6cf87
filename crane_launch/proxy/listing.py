"""What simple-index pages list (PEP 503 HTML, PEP 691 JSON), for `crane audit`.

- `project_versions`: the versions of one project a project page offers, read from its
  file names (wheels, sdists, eggs, and their PEP 658 `.metadata` files) and, for PEP 691
  JSON of api-version 1.1 or later, the PEP 700 `versions` list.
- `listed_projects`: the projects an index root page lists.
- `overlap` and `highest`: comparing version sets by PEP 440.

Pure functions of bytes. The content type decides the reading the way
`rewrite.page_kind` does; a missing or unknown type is read as HTML. A body that is not
an index page (JSON that does not parse or has the wrong shape, HTML that cannot be
decoded, a page with a form) raises `PageError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from crane_launch.proxy.guard import _SDIST_SUFFIXES
from crane_launch.proxy.rewrite import (
    Attributes,
    PageError,
    _decode_html,
    _tags,
    load_json_object,
    page_kind,
)
from crane_launch.proxy.routing import normalise_project

__all__ = ["highest", "listed_projects", "overlap", "project_versions", "version_key"]

_VALID_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_EGG = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-[^-]+)*\.egg$", re.IGNORECASE)
_PEP700 = (1, 1)


# --- project pages ------------------------------------------------------------------


def project_versions(body: bytes, content_type: str, project: str) -> frozenset[str]:
    """The versions of `project` the project page `body` offers, in PEP 440 canonical
    form (`str(Version(v))`; a version that does not parse is kept as written, lower
    case). Yanked files count: they are on the index. A file of another project (the
    page of `foo` linking `foo-bar-1.0.tar.gz`) does not."""
    wanted = normalise_project(project)
    if _is_json(content_type):
        filenames, listed = _json_files(body, wanted)
    else:
        _text, hrefs = _read_html(body, content_type)
        filenames = [name for href in hrefs if (name := _last_segment(href))]
        listed = []
    found = {v for filename in filenames if (v := _file_version(filename, wanted)) is not None}
    found.update(_canonical(v) for v in listed)
    return frozenset(found)


def _json_files(body: bytes, project: str) -> tuple[list[str], list[str]]:
    """(file names, PEP 700 versions) of a PEP 691 project page."""
    data = load_json_object(body)
    files = data.get("files")
    if not isinstance(files, list):
        if "files" not in data and isinstance(data.get("projects"), list):
            raise PageError("upstream JSON page is an index root, not a project page")
        raise PageError("upstream JSON page has no 'files' list")
    filenames: list[str] = []
    for position, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise PageError(f"upstream JSON page: files[{position}] is not an object")
        filename = entry.get("filename")
        if isinstance(filename, str) and filename:
            filenames.append(filename)
        elif isinstance(entry.get("url"), str):
            filenames.append(_last_segment(entry["url"]))
        else:
            raise PageError(f"upstream JSON page: files[{position}] has no 'filename' or 'url'")
    versions: list[str] = []
    name = data.get("name")
    same_project = not isinstance(name, str) or normalise_project(name) == project
    if same_project and _api_version(data) >= _PEP700 and isinstance(data.get("versions"), list):
        versions = [v for v in data["versions"] if isinstance(v, str) and v.strip()]
    return filenames, versions


def _api_version(data: dict[str, Any]) -> tuple[int, ...]:
    meta = data.get("meta")
    raw = meta.get("api-version") if isinstance(meta, dict) else None
    if not isinstance(raw, str):
        return (1, 0)
    try:
        return tuple(int(part) for part in raw.strip().split("."))
    except ValueError:
        return (1, 0)


def _file_version(filename: str, project: str) -> str | None:
    """The version of `project` that the file `filename` is of; None for a file of
    another project, or one that is not a distribution."""
    name = filename.strip()
    if name.lower().endswith(".metadata"):  # PEP 658: the metadata of the file it names
        name = name[: -len(".metadata")]
    lowered = name.lower()
    if lowered.endswith(".whl"):
        return _wheel_version(name, project)
    if lowered.endswith(".egg"):
        egg = _EGG.match(name)
        if egg is None or normalise_project(egg.group("name")) != project:
            return None
        return _versioned(egg.group("version"))
    suffix = next((s for s in _SDIST_SUFFIXES if lowered.endswith(s)), None)
    if suffix is None:
        return None
    return _sdist_version(name[: -len(suffix)], project)


def _wheel_version(filename: str, project: str) -> str | None:
    try:
        name, version, _, _ = parse_wheel_filename(filename[:-4] + ".whl")
    except InvalidWheelFilename:
        # A name packaging refuses (an odd version or tag): read it as an installer
        # that splits on hyphens would, `{name}-{version}(-{build})?-{py}-{abi}-{plat}`.
        parts = filename[:-4].split("-")
        if len(parts) not in (5, 6) or normalise_project(parts[0]) != project:
            return None
        return _versioned(parts[1])
    return str(version) if normalise_project(name) == project else None


def _sdist_version(stem: str, project: str) -> str | None:
    """The version in `{name}-{version}`, where `name` normalises to `project`. A name
    may hold hyphens; a remainder that is not a version but holds a later split that is
    one (`foo-1-2.0` on the page of `foo`) is a file of another project (`foo-1`)."""
    for position, char in enumerate(stem):
        if char != "-" or normalise_project(stem[:position]) != project:
            continue
        version = stem[position + 1 :]
        if not _versionish(version):
            return None
        if _parses(version):
            return str(Version(version))
        rest = version.split("-")
        if any(_parses("-".join(rest[i:])) for i in range(1, len(rest))):
            return None
        return version.lower()
    return None


def _versioned(text: str) -> str | None:
    return _canonical(text) if _versionish(text) else None


def _versionish(text: str) -> bool:
    """Whether `text` may start a version: a digit, or `v` and a digit (PEP 440's `v`)."""
    return text[:1].isdigit() or (text[:1] in ("v", "V") and text[1:2].isdigit())


# --- index root pages ---------------------------------------------------------------


def listed_projects(body: bytes, content_type: str) -> list[str]:
    """The projects the index root page `body` lists, PEP 503-normalised, each once, in
    page order: PEP 691 `projects[].name`, or the text of each HTML `<a href>` (the last
    non-empty segment of its href when it has no text). Invalid names are skipped."""
    if _is_json(content_type):
        names = _json_projects(body)
    else:
        text, _hrefs = _read_html(body, content_type)
        try:
            names = _AnchorTexts(text).names
        except PageError:
            raise
        except Exception as exc:  # html.parser has a few internal assertions
            raise PageError(f"upstream HTML page cannot be parsed ({type(exc).__name__})") from None
    found = [normalise_project(name) for name in names if _VALID_NAME.match(name)]
    return list(dict.fromkeys(found))


def _json_projects(body: bytes) -> list[str]:
    data = load_json_object(body)
    projects = data.get("projects")
    if not isinstance(projects, list):
        if "projects" not in data and isinstance(data.get("files"), list):
            raise PageError("upstream JSON page is a project page, not an index root")
        raise PageError("upstream JSON page has no 'projects' list")
    names: list[str] = []
    for position, entry in enumerate(projects):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PageError(f"upstream JSON page: projects[{position}] has no 'name' string")
        names.append(entry["name"].strip())
    return names


class _AnchorTexts(HTMLParser):
    """The name each `<a href>` of a page stands for: its text, whitespace collapsed
    (character references decoded), or else the last non-empty segment of its href."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.names: list[str] = []
        self._href: str | None = None
        self._text: list[str] | None = None
        self.feed(text)
        self.close()
        self._finish()

    def handle_starttag(self, tag: str, attrs: Attributes) -> None:
        if tag != "a":
            return
        self._finish()  # an `<a>` inside an open `<a>` ends it, as browsers do
        href = next((value for name, value in attrs if name == "href" and value is not None), None)
        if href is not None:
            self._href, self._text = href, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._finish()

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _finish(self) -> None:
        if self._href is None or self._text is None:
            return
        name = " ".join("".join(self._text).split())
        if not name:
            segments = [s for s in urlsplit(self._href.strip()).path.split("/") if s]
            name = unquote(segments[-1]) if segments else ""
        if name:
            self.names.append(name)
        self._href = self._text = None


# --- comparing versions -------------------------------------------------------------


def overlap(private: Iterable[str], public: Iterable[str]) -> frozenset[str]:
    """The versions of `private` that `public` has too, compared as PEP 440 versions
    ("1.0" is "1.0.0"; versions that do not parse compare as lower-case text), in the
    private spelling."""
    parsed: set[Version] = set()
    unparsed: set[str] = set()
    for version in public:
        parsed_version = _parse(version)
        if parsed_version is None:
            unparsed.add(version.strip().lower())
        else:
            parsed.add(parsed_version)
    found: set[str] = set()
    for version in private:
        parsed_version = _parse(version)
        if parsed_version is None:
            if version.strip().lower() in unparsed:
                found.add(version)
        elif parsed_version in parsed:
            found.add(version)
    return frozenset(found)


def highest(versions: Iterable[str]) -> str | None:
    """The highest version by PEP 440 ordering, as written; a version that does not
    parse loses to every one that does (among themselves, by text). None for none."""
    ranked = [(version_key(version), version) for version in versions]
    return max(ranked)[1] if ranked else None


_NO_VERSION = Version("0")


def version_key(version: str) -> tuple[int, Version, str]:
    """A sort key in PEP 440 order; a version that does not parse sorts first, by text."""
    parsed = _parse(version)
    if parsed is None:
        return (0, _NO_VERSION, version.strip().lower())
    return (1, parsed, version)


# --- shared -------------------------------------------------------------------------


def _is_json(content_type: str) -> bool:
    return page_kind(content_type) == "json"


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def _parses(version: str) -> bool:
    return _parse(version) is not None


def _canonical(version: str) -> str:
    parsed = _parse(version)
    return version.strip().lower() if parsed is None else str(parsed)


def _last_segment(url: str) -> str:
    """The percent-decoded last path segment of `url` (query and fragment dropped)."""
    try:
        path = urlsplit(url.strip()).path
    except ValueError:  # such as an unbalanced `[` in the host
        path = url.partition("#")[0].partition("?")[0]
    return unquote(path.rsplit("/", 1)[-1])


def _read_html(body: bytes, content_type: str) -> tuple[str, list[str]]:
    """The decoded page and the href of each of its `<a>` tags, in page order. A page with
    a form or a password field (a login page answered with 200) is not an index page."""
    if not body.strip():
        raise PageError("upstream page is empty")
    text, _ = _decode_html(body, content_type)
    try:
        tags = _tags(text, frozenset({"a", "form", "input"}))
    except PageError:
        raise
    except Exception as exc:  # html.parser has a few internal assertions
        raise PageError(f"upstream HTML page cannot be parsed ({type(exc).__name__})") from None
    hrefs: list[str] = []
    for tag in tags:
        attributes = [(name, (value or "").lower()) for name, value in tag.attrs]
        if tag.name == "form" or ("type", "password") in attributes:
            raise PageError("upstream page has a form (a login page?), not an index page")
        if tag.name == "a" and (href := tag.href()) is not None:
            hrefs.append(href)
    return text, hrefs
