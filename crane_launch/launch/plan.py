"""What a launcher run will do, decided before anything runs: one `Plan` for every tool.

A `Plan` is the child's argv, the lines crane prints first, and a *mode*, which says how
the child reaches its indexes (in the spirit of mitmproxy's proxy modes):

- `Unchanged`: no registered index is in play; the tool runs as it is.
- `IndexDoorMode` (pip, `uv pip`): the registered index sits behind the index door, a
  one-run PEP 503/691 URL that crane puts into `index_env_var`; `env_unset` / `env_set`
  adjust the child's environment, and `file_copies` are requirements files rewritten
  beside their originals for the length of the run.
- `TransparentDoorMode` (poetry, uv project commands): the argv stays as it is and the
  private hosts are reached through the transparent door (a forward proxy that
  authenticates for those hosts only).

Planners are pure: they read files only through the `ReadText` they are given and never
start a process or open a socket. `launch.run.run` carries a plan out.

This module also holds the vocabulary every planner shares: where an index was named
(`IndexSetting`), a refused setting (`Rejection`) and the reasons crane gives.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crane_launch.config import PrivateIndex, origin_of
from crane_launch.environ import ALWAYS_HIDDEN
from crane_launch.errors import RejectedSettingError

__all__ = [
    "ALWAYS_HIDDEN",
    "EXTRA_INDEX_WHY",
    "FIND_LINKS_WHY",
    "LEGACY_BUILD_WHY",
    "NO_PROXY_ENV_WHY",
    "PROXY_WHY",
    "REMOTE_FILE_WHY",
    "DirectReference",
    "FileCopy",
    "IndexDoorMode",
    "IndexSetting",
    "Mode",
    "PipxRecord",
    "Plan",
    "RecordedUrls",
    "Rejection",
    "TransparentDoorMode",
    "Unchanged",
    "local_location",
    "remote_links",
]

EXTRA_INDEX_WHY = "projects could come from another index and bypass private-first routing"
FIND_LINKS_WHY = (
    "a find-links page (remote, or a local HTML file) is an index in disguise and could "
    "shadow private projects; use a local directory, or publish the files to the private index"
)
LEGACY_BUILD_WHY = (
    "setuptools' legacy build turns dependency_links into find-links pages of a nested pip "
    "that crane cannot see; build with PEP 517"
)


def remote_links(values: Iterable[str]) -> list[str]:
    """The find-links locations that are pages of links: web pages, and local HTML files
    (pip parses one like a remote page, and follows its links anywhere). Local
    directories and distribution files are the user's own and stay allowed."""
    pages = []
    for value in values:
        text = value.strip().lower()
        if text.startswith(("http://", "https://")) or text.endswith((".html", ".htm")):
            pages.append(value)
    return pages


def local_location(value: str, cwd: Path) -> Path | None:
    """A find-links value as the local path a tool reads (relative to `cwd`): a path, or a
    `file:` URL as pip and uv read it (no host or `localhost`, percent-decoded); None for
    anything on the network, which `remote_links` judges."""
    text = value.strip()
    if not text:
        return None
    if text.lower().startswith("file:"):
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc.lower() not in ("", "localhost"):
            return None  # a file on another host: pip refuses it on POSIX
        return Path("/" + urllib.parse.unquote(parsed.path).lstrip("/"))
    if "://" in text:
        return None
    return cwd / text


NO_PROXY_ENV_WHY = (
    "it makes pip ignore the proxy variables through which every request of the tool "
    "passes crane's guard"
)
PROXY_WHY = (
    "crane's proxy must be the tool's only way to the index; set HTTPS_PROXY for crane instead"
)
REMOTE_FILE_WHY = (
    "crane cannot check a requirements file fetched over the network for index lines; "
    "download it and pass the local copy"
)


@dataclass(frozen=True)
class FileCopy:
    """A rewritten requirements file to write at `copy` before the run and delete after.

    `copy` lies in the same directory as `original`, so relative includes resolve alike.
    """

    original: Path
    copy: Path
    text: str


@dataclass(frozen=True)
class DirectReference:
    """A requirement that says where its project comes from: `name @ URL` (PEP 508), a
    `[tool.uv.sources]` or poetry `url`/`git` source (`kind` "url"), or a pin to a named
    index (`kind` "index", `url` the index's URL). `project` is the normalised name;
    `place` where the requirement was written."""

    project: str
    url: str
    place: str
    kind: str = "url"


@dataclass(frozen=True)
class RecordedUrls:
    """Files (`pattern` under `directory`) where the tool records the index it used, for
    later runs (uv's tool receipts): the door's one-run URL in them is mapped back to the
    private index after the run."""

    directory: Path
    pattern: str
    only: frozenset[str] | None = None
    """The names of the directories (below `directory`) whose files get the private index;
    in the others the door's entries are taken out instead (a tool the run upgraded only
    because `--all` named it, which came from elsewhere). None: every file."""


@dataclass(frozen=True)
class PipxRecord:
    """pipx's environments (`venvs`), when crane took the index options off pipx's command
    line (its pip backend): the packages whose metadata the run wrote record the private
    index afterwards, as pipx would have, so that a later upgrade does not go elsewhere.
    `only`: the environments that may get it (None: any the run wrote); `main_package`:
    False for `inject`, which installs only the injected packages."""

    venvs: Path
    only: frozenset[str] | None = None
    main_package: bool = True


@dataclass(frozen=True)
class Unchanged:
    """Run the tool as it is: no registered index is in play."""


@dataclass(frozen=True)
class IndexDoorMode:
    """Put `private` behind the index door, with `public_url` for the projects it lacks.

    The runner builds the child's environment from the parent's: it removes `env_unset`,
    adds `env_set`, then sets `index_env_var` to the door's URL. It writes `file_copies`
    before the child starts and deletes them after. `lock_output` is a lock file the tool
    writes (`pip lock`): its door URLs are mapped back to the real index afterwards.
    """

    private: PrivateIndex
    public_url: str
    index_env_var: str
    env_set: Mapping[str, str] = field(default_factory=dict)
    env_unset: frozenset[str] = frozenset()
    file_copies: tuple[FileCopy, ...] = ()
    lock_output: Path | None = None
    direct_references: tuple[DirectReference, ...] = ()
    """Requirements that say where their project comes from: the runner refuses one that
    takes a project of the private index from elsewhere."""
    lock_files: tuple[Path, ...] = ()
    """Lock files the tool installs from (`uv pip install -r pylock.toml`): verified first."""
    find_links: tuple[Path, ...] = ()
    """Local find-links directories: one holding a file of a private project is refused
    (the guard sees no local file)."""
    also_env_vars: tuple[str, ...] = ()
    """More variables set to the door's URL (`crane run`: every tool's index variable)."""
    recorded: tuple[RecordedUrls, ...] = ()
    pipx_record: PipxRecord | None = None


@dataclass(frozen=True)
class TransparentDoorMode:
    """Reach `privates` through the transparent door; the child's argv is never changed.
    The lock files in `project_dir` (the project or workspace root; None: no project) are
    verified before the child starts."""

    privates: tuple[PrivateIndex, ...]
    public_url: str = ""
    """The public index the project's tool uses (the first unregistered index its settings
    name, else the private index's registered public index, else pip's default): asked
    only whether it has the private projects of the run, for the provenance summary."""
    project_dir: Path | None = None
    direct_references: tuple[DirectReference, ...] = ()
    find_links: tuple[Path, ...] = ()
    """Local find-links locations: one holding a file of a private project is refused."""

    @property
    def private_hosts(self) -> list[str]:
        return sorted({origin_of(index.url).host for index in self.privates})


Mode = Unchanged | IndexDoorMode | TransparentDoorMode


@dataclass
class Plan:
    """Everything the runner needs for one tool command.

    `notes` are one line each, without the `crane:` prefix (the console adds it); they are
    printed before the child starts. (What used to be a warning is a refusal now: a
    planner raises it.)
    """

    tool: str
    command: list[str]
    mode: Mode
    notes: list[str] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()
    """Variables that hold crane's secrets (client secrets, tokens, passwords): removed
    from the child's environment, so that no build backend or hook of the tool sees them.
    `ALWAYS_HIDDEN` is removed whatever this says."""


@dataclass(frozen=True)
class Rejection:
    """A setting crane refuses; raised as `RejectedSettingError` once an index is in play."""

    place: str
    setting: str
    why: str

    def error(self) -> RejectedSettingError:
        return RejectedSettingError(self.place, self.setting, self.why)


@dataclass(frozen=True)
class IndexSetting:
    """One place that names an index URL.

    `explicit` marks the command line: an unregistered URL there is a mistake, not a
    public index.
    """

    url: str
    place: str
    explicit: bool = False
