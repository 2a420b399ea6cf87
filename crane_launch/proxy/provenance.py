"""Where every project of one run came from: the doors write it down as they decide.

The index door records what the private index answered for each project it asked about
(the evidence of a fallback: a 404 once the credentials were proven) and which page it
served; the index door and the transparent door record each distribution file the child
downloaded, with its sha256 when crane knows it. A project served by the private index is
then looked up once on the public index, in the background, so the run can say which
private projects a public index also has (the ones a tool without crane could have
taken from there). Only project pages are asked for, and only for names the private
index served.

The ledger lives on the proxy's event loop and is read once the child is gone:
`summary()` is the one line crane prints after a run, `as_json()` the record
`crane --report FILE` writes. The record's format is versioned (`FORMAT`, `VERSION`) and
documented in the README; URLs in it are shown without userinfo, query or fragment
(`config.shown_url`), and it never holds a token or a door's secret path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from crane_launch.config import origin_of, origin_url, shown_url

__all__ = [
    "FORMAT",
    "VERSION",
    "FileRecord",
    "Ledger",
    "PrivateAnswer",
    "ProjectRecord",
]

log = logging.getLogger(__name__)

FORMAT = "crane-provenance"
VERSION = 1

Source = Literal["private", "public"]
PublicCheck = Callable[[str], Awaitable[bool | None]]
"""Whether the public index has a project (None: it could not tell)."""

_NAMED_AT_MOST = 5
"""Fallbacks are named in the summary line when there are at most this many."""
_CHECKS_AT_ONCE = 8


@dataclass(frozen=True)
class PrivateAnswer:
    """What one private index answered for a project's page, as the door judged it."""

    index: str
    url: str
    status: int | None
    verdict: Literal["served", "absent", "error"]
    credentials_proven: bool
    reason: str = ""
    at: float = field(default_factory=time.time, compare=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "url": self.url,
            "status": self.status,
            "verdict": self.verdict,
            "credentials_proven": self.credentials_proven,
            "at": _iso(self.at),
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class FileRecord:
    """One distribution file the child downloaded."""

    filename: str
    url: str
    source: Source
    index: str
    sha256: str | None = None
    sha256_from: Literal["index page", "served bytes"] | None = None
    size: int | None = None
    from_cache: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "url": self.url,
            "source": self.source,
            "index": self.index,
            "sha256": self.sha256,
            "sha256_from": self.sha256_from,
            "size": self.size,
            "from_cache": self.from_cache,
        }


@dataclass
class ProjectRecord:
    """Everything the run learned about one (normalised) project."""

    name: str
    answers: list[PrivateAnswer] = field(default_factory=list)
    pages: list[tuple[Source, str, str]] = field(default_factory=list)
    """(source, index, page URL) for each page the child was given."""
    files: dict[str, FileRecord] = field(default_factory=dict)
    """By URL: each file once."""
    on_public: bool | None = None
    """Whether the public index has the project too (asked only for private ones)."""

    @property
    def sources(self) -> set[Source]:
        found: set[Source] = {source for source, _index, _url in self.pages}
        return found | {record.source for record in self.files.values()}

    @property
    def source(self) -> str:
        """private, public, private+public (never expected: the guard refuses it), or none."""
        sources = self.sources
        if len(sources) == 2:
            return "private+public"
        return next(iter(sources)) if sources else "none"

    @property
    def fallback_proof(self) -> PrivateAnswer | None:
        """The private index's not-found that let the project come from the public index."""
        return next((a for a in reversed(self.answers) if a.verdict == "absent"), None)

    def as_json(self) -> dict[str, Any]:
        index = next((i for _s, i, _u in self.pages), None)
        if index is None:
            index = next((f.index for f in self.files.values()), None)
        out: dict[str, Any] = {
            "name": self.name,
            "source": self.source,
            "index": index,
            "pages": [url for _source, _index, url in self.pages],
            "files": [record.as_json() for record in self.files.values()],
            "private_index_answers": [answer.as_json() for answer in self.answers],
        }
        if "public" in self.sources:
            proof = self.fallback_proof
            out["fallback"] = proof.as_json() if proof is not None else None
        if "private" in self.sources:
            out["also_on_public_index"] = self.on_public
        return out


class Ledger:
    """One run's record (see the module docstring). Written on the proxy's event loop.

    `public_check` (None: no public index to ask) is called once per project the private
    index served, in the background, at most `_CHECKS_AT_ONCE` at a time.
    """

    def __init__(self, public_check: PublicCheck | None = None) -> None:
        self.public_check = public_check
        self.projects: dict[str, ProjectRecord] = {}
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._locked: dict[str, tuple[str, Source, str]] = {}
        """File URL (as shown) -> (project, source, index) from a verified lock file."""
        self.started = time.time()

    def _project(self, name: str) -> ProjectRecord:
        record = self.projects.get(name)
        if record is None:
            record = self.projects[name] = ProjectRecord(name)
        return record

    # -- what the doors write -------------------------------------------------------------

    def locked_file(self, url: str, *, project: str, source: Source, index: str) -> None:
        """A lock file crane verified names `url` as a file of `project` from `index`: a
        download of it is that project's, from that index (a lock fetches no pages)."""
        self._locked[shown_url(url)] = (project, source, shown_url(index))

    def private_answer(
        self,
        project: str,
        *,
        index: str,
        url: str,
        status: int | None,
        verdict: Literal["served", "absent", "error"],
        proven: bool,
        reason: str = "",
    ) -> None:
        """The private index's answer for `project`'s page (asked by the door or the guard)."""
        answer = PrivateAnswer(shown_url(index), shown_url(url), status, verdict, proven, reason)
        answers = self._project(project).answers
        if answer not in answers:  # a page the tool asks for twice: one answer
            answers.append(answer)

    def page(self, project: str, *, source: Source, index: str, url: str) -> None:
        """The child was given `project`'s page from `index` (`url`, the page's real URL)."""
        record = self._project(project)
        entry = (source, shown_url(index), shown_url(url))
        if entry not in record.pages:
            record.pages.append(entry)
        if source == "private":
            self._check_public(project)

    def file(
        self,
        projects: tuple[str, ...],
        *,
        source: Source,
        index: str | None,
        url: str,
        sha256: str | None = None,
        sha256_from: Literal["index page", "served bytes"] | None = None,
        size: int | None = None,
        from_cache: bool = False,
        by_host: bool = False,
    ) -> FileRecord | None:
        """The child downloaded `url`, a distribution file of one of `projects` (the
        candidates its name allows; `_owner` picks one). A `.metadata` file (PEP 658) is
        not a distribution: not recorded. `by_host`: the file is "private" only because
        of the host it is on (the transparent door); a project whose pages all came from
        another index on that host (a mirror beside the private index) keeps their source.
        """
        shown = shown_url(url)
        filename = unquote(urlsplit(shown).path.rsplit("/", 1)[-1])
        if not projects or filename.endswith(".metadata"):
            return None
        locked = self._locked.get(shown)
        if locked is not None and locked[0] in projects and (by_host or locked[1] == source):
            project, source, index = locked
            by_host = False
        else:
            project = self._owner(projects, source)
        record = self._project(project)
        page_sources = {page_source for page_source, _index, _url in record.pages}
        if by_host and source == "private" and page_sources == {"public"}:
            source, index = "public", None
        if index is None:  # where the project's page came from, else the file's host
            index = next(
                (
                    page_index
                    for page_source, page_index, _u in record.pages
                    if page_source == source
                ),
                origin_url(origin_of(shown)),
            )
        if source == "private":
            self._check_public(project)
        existing = record.files.get(shown)
        if existing is not None:
            existing.from_cache = existing.from_cache and from_cache
            if sha256 is not None and existing.sha256 is None:
                existing.sha256, existing.sha256_from = sha256, sha256_from
            return existing
        created = FileRecord(
            filename, shown, source, shown_url(index), sha256, sha256_from, size, from_cache
        )
        record.files[shown] = created
        return created

    def _owner(self, projects: tuple[str, ...], source: Source) -> str:
        """Which of the candidate projects a file is of: one whose page came from the
        same source, else the longest name (`foo-2-1.0.tar.gz` is foo-2's 1.0 before it
        is foo's 2-1.0)."""
        paged = [
            name
            for name in projects
            if name in self.projects
            and any(page_source == source for page_source, _i, _u in self.projects[name].pages)
        ]
        return max(paged or projects, key=len)

    # -- the public index, for private projects -------------------------------------------

    def _check_public(self, project: str) -> None:
        if self.public_check is None or project in self._checks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(_CHECKS_AT_ONCE)
        work = self._ask_public(project, self.public_check, self._slots)
        self._checks[project] = loop.create_task(work)

    async def _ask_public(self, project: str, check: PublicCheck, slots: asyncio.Semaphore) -> None:
        async with slots:
            try:
                self._project(project).on_public = await check(project)
            except Exception as exc:  # the record says "unknown"; the run goes on
                log.debug("public index check for %s failed: %s", project, type(exc).__name__)

    async def settle(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the public index checks; the rest stay unknown."""
        pending = [task for task in self._checks.values() if not task.done()]
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        for task in late:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- what the run shows -----------------------------------------------------------------

    def _by_source(self) -> tuple[list[str], list[str], list[str]]:
        private = sorted(n for n, r in self.projects.items() if "private" in r.sources)
        public = sorted(n for n, r in self.projects.items() if r.sources == {"public"})
        both = sorted(n for n in private if self.projects[n].on_public)
        return private, public, both

    def summary(self) -> str:
        """One line: how many projects came from the private index, which fell back to
        the public index, and which private ones the public index has too."""
        private, public, both = self._by_source()
        if not private and not public:
            return "provenance: no project was fetched from an index this run"
        parts = [f"{_count(len(private), 'project')} from the private index"]
        if public:
            named = f" ({', '.join(public)})" if len(public) <= _NAMED_AT_MOST else ""
            parts.append(f"{len(public)} from the public index{named}")
        line = "provenance: " + ", ".join(parts)
        if both:
            shown = ", ".join(both[:_NAMED_AT_MOST])
            more = f" and {len(both) - _NAMED_AT_MOST} more" if len(both) > _NAMED_AT_MOST else ""
            verb = "is" if len(both) == 1 else "are"
            line += f"; {shown}{more} {verb} on the public index too, taken from the private one"
        unanswered = [
            n for n in private if n in self._checks and self.projects[n].on_public is None
        ]
        if unanswered:
            count = _count(len(unanswered), "project")
            line += f"; the public index did not say whether it has {count} too"
        return line

    def as_json(self, **meta: Any) -> dict[str, Any]:
        """The run's record (the versioned format the README documents); `meta` adds
        top-level fields (the tool, the exit code, the indexes)."""
        private, public, both = self._by_source()
        return {
            "format": FORMAT,
            "version": VERSION,
            **meta,
            "started": _iso(self.started),
            "finished": _iso(time.time()),
            "summary": {
                "private": private,
                "public": public,
                "on_both_private_won": both,
            },
            "projects": [self.projects[name].as_json() for name in sorted(self.projects)],
        }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
