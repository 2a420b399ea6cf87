"""The guard's rule: which project a request of the child is for, and whether it may go.

Every request of every child crane starts passes the transparent door. The rule it
applies (design section 10): a request for a distribution file of a project, or for a
project's page, whose normalised name the private index serves, is refused unless it
goes to the private index's origin. Everything else passes unchanged.

`requested_projects` reads a request URL, as pure text:

- a distribution file is named by the last path segment: a wheel
  (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`, PEP 427), an sdist
  (`{name}-{version}.tar.gz` and the other archive suffixes pip accepts), a legacy egg,
  or any of those with `.metadata` appended (PEP 658). An sdist name may hold hyphens
  (`foo-bar-1.0.tar.gz`), so every split whose remainder starts with a digit is a
  candidate: the guard refuses if any candidate is private.
- a project page is a path whose parent segment is `simple` or `+simple` (PEP 503, and
  devpi), or the JSON API path `/pypi/{name}/json` and `/pypi/{name}/{version}/json` that
  poetry reads from an index of that kind.

`PrivateNames` answers "does the private index serve this project?" once per name per
run, with the index door's own rules (`routing.decide`): a 200 page means served; a
404/410 after the credentials were proven means not served; anything else is unknown,
and the guard refuses an unknown name too (an error never lets a request through).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

from crane_launch.config import Origin, origin_of
from crane_launch.proxy.routing import normalise_project

__all__ = [
    "Guard",
    "NameStatus",
    "ProjectLookup",
    "Refusal",
    "distribution_projects",
    "requested_page",
    "requested_projects",
]

log = logging.getLogger(__name__)

_WHEEL = re.compile(r"^(?P<name>[^-]+)-[^-]+(?:-[^-]+)?-[^-]+-[^-]+-[^-]+\.whl$", re.IGNORECASE)
# pip's ARCHIVE_EXTENSIONS (pip 26.3, pip/_internal/utils/filetypes.py) but `.whl`.
_SDIST_SUFFIXES = (
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar.lz",
    ".tlz",
    ".tar.lzma",
    ".tar",
    ".zip",
    ".tar.zst",  # uv accepts these too
    ".tzst",
)
_EGG = re.compile(r"^(?P<name>[^-]+)-[^-]+(?:-[^-]+)*\.egg$", re.IGNORECASE)
_PAGE_PARENTS = frozenset({"simple", "+simple"})
_VALID_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def requested_projects(
    url: str, *, filename: str | None = None, page: str | None = None
) -> tuple[str, ...]:
    """The normalised project names `url` may be a file or a page of (none: neither);
    `filename` (a response's Content-Disposition) is judged as a file name too, and `page`
    (the last segment of a response that is a PEP 691 page) as a project name.

    The path is read as a server that decodes and normalises it would (`%2E%2E` is a
    `..` there), and names as packaging compares them (Unicode NFKC first: a Kelvin sign
    is a `k`); a last segment that could be both a file and a page is both.
    """
    extra = distribution_projects(filename) if filename else ()
    if page and (named := _name(_nfkc(unquote(page)))) is not None:
        extra += (named,)
    segments = _resolved_segments(_nfkc(unquote(urlsplit(url).path)))
    if not segments:
        return extra
    page = _page_project(segments)
    found = _file_projects(segments[-1]) + ((page,) if page is not None else ()) + extra
    return tuple(dict.fromkeys(found))


def requested_page(url: str) -> str | None:
    """The normalised project `url` is the page of (`requested_projects`' page rule), or None."""
    segments = _resolved_segments(_nfkc(unquote(urlsplit(url).path)))
    return _page_project(segments) if segments else None


def distribution_projects(filename: str) -> tuple[str, ...]:
    """The normalised projects a file name (its last path part) may be a distribution of:
    how a tool names, and judges, a file it saves or finds in a local directory."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return _file_projects(_nfkc(base)) if base else ()


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _resolved_segments(path: str) -> list[str]:
    resolved: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(segment)
    return resolved


def _page_project(segments: Sequence[str]) -> str | None:
    if len(segments) >= 2 and segments[-2].lower() in _PAGE_PARENTS:
        return _name(segments[-1])
    if len(segments) >= 3 and segments[-3].lower() == "pypi" and segments[-1] == "json":
        return _name(segments[-2])
    if len(segments) >= 4 and segments[-4].lower() == "pypi" and segments[-1] == "json":
        return _name(segments[-3])
    return None


def _file_projects(filename: str) -> tuple[str, ...]:
    name = filename.removesuffix(".metadata")
    wheel = _WHEEL.match(name)
    if wheel:
        return _names([wheel.group("name")])
    egg = _EGG.match(name)
    if egg:
        return _names([egg.group("name")])
    lowered = name.lower()
    suffix = next((s for s in _SDIST_SUFFIXES if lowered.endswith(s)), None)
    if suffix is None:
        return ()
    stem = name[: -len(suffix)]
    parts = stem.split("-")
    return _names(["-".join(parts[:i]) for i in range(1, len(parts)) if _versionish(parts[i])])


def _versionish(text: str) -> bool:
    """Whether `text` may start a version: a digit, or `v` and a digit (PEP 440's `v`)."""
    return text[:1].isdigit() or (text[:1] in ("v", "V") and text[1:2].isdigit())


def _name(text: str) -> str | None:
    return normalise_project(text) if _VALID_NAME.match(text) else None


def _names(texts: Sequence[str]) -> tuple[str, ...]:
    found = [n for t in texts if (n := _name(t)) is not None]
    return tuple(dict.fromkeys(found))


class NameStatus(enum.Enum):
    """What the private index said about one project name."""

    SERVED = "served"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class ProjectLookup(Protocol):
    """Asks one private index about one project (the index door does: `IndexDoor`)."""

    @property
    def private_url(self) -> str: ...

    async def project_status(self, project: str) -> tuple[NameStatus, str]:
        """(status, reason): `reason` says why the status is UNKNOWN, else ""."""
        ...


@dataclass(frozen=True)
class Refusal:
    """One request the guard refused: what was asked for, and why."""

    url: str
    project: str
    reason: str

    def line(self) -> str:
        """The `crane:` line for the user (the URL without its query: it may carry state)."""
        return f"refused {self.url.split('?', 1)[0]}: {self.reason}"


class Guard:
    """The rule, for one run: `check(url)` is None (let it through) or a `Refusal`.

    `lookups` are the private indexes of the run; `private_origins` their origins, where
    every request may go. Each project name is looked up once per run (concurrent
    requests for the same name share one lookup). `refusals` keeps every refusal in
    order, for the run's summary and exit code.
    """

    def __init__(self, lookups: Sequence[ProjectLookup], private_origins: Iterable[Origin]) -> None:
        self._lookups = list(lookups)
        self._private_origins = frozenset(private_origins)
        self._known: dict[tuple[int, str], asyncio.Task[tuple[NameStatus, str]]] = {}
        self.refusals: list[Refusal] = []

    async def check(
        self, url: str, *, filename: str | None = None, page: str | None = None
    ) -> Refusal | None:
        """None to let the request for `url` through, else the refusal (recorded).
        `filename` and `page` are what the response says it is (`requested_projects`)."""
        try:
            origin = origin_of(url)
        except ValueError:
            origin = None
        if origin in self._private_origins:
            return None
        for project in requested_projects(url, filename=filename, page=page):
            refusal = await self._check_project(url, project)
            if refusal is not None:
                self.refusals.append(refusal)
                log.warning("%s", refusal.line())
                return refusal
        return None

    async def _check_project(self, url: str, project: str) -> Refusal | None:
        for number, lookup in enumerate(self._lookups):
            status, reason = await self._status(number, lookup, project)
            if status is NameStatus.SERVED:
                return Refusal(
                    url,
                    project,
                    f"{project} is a project of private index {lookup.private_url}, "
                    "so it is taken from there only",
                )
            if status is NameStatus.UNKNOWN:
                return Refusal(
                    url,
                    project,
                    f"cannot tell whether private index {lookup.private_url} has {project} "
                    f"({reason}); not letting it come from elsewhere",
                )
        return None

    async def _status(
        self, number: int, lookup: ProjectLookup, project: str
    ) -> tuple[NameStatus, str]:
        key = (number, project)
        task = self._known.get(key)
        if task is None:
            task = asyncio.ensure_future(lookup.project_status(project))
            self._known[key] = task
        try:
            return await asyncio.shield(task)
        except Exception as exc:  # a lookup that crashed is unknown, never "absent"
            return NameStatus.UNKNOWN, type(exc).__name__
