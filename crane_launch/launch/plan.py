"""What a launcher run will do, decided before anything runs.

`LaunchPlan` is the whole decision for one `crane pip ...` or `crane uv pip ...`: the
child's argv, which registered index is in play, where the projects it lacks come from,
which environment variables to drop and add, and which requirements-file copies to write
beside their originals for the length of the run. The planners (`pip.plan_pip`,
`uv.plan_uv_pip`) are pure: they read files only through the `read_text` callable they
are given and never start a process or open a socket.

The launcher applies a plan in this order: write `file_copies`; build the child's
environment from the parent's, remove `env_unset`, add `env_set`, then set
`index_env_var` to the proxy's index door; run `command`; delete the copies.

This module also holds what both planners share: the argv scanner (optparse rules for pip,
clap rules for uv), the rule that picks the private and the public index from every place
an index was named, and the reasons crane gives when it refuses a setting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crane_launch.config import PrivateIndex, Registry, closest, normalise_url
from crane_launch.errors import (
    ConfigError,
    RejectedSettingError,
    UnknownIndexError,
    UsageError,
)

__all__ = [
    "EXTRA_INDEX_WHY",
    "FIND_LINKS_WHY",
    "PROXY_WHY",
    "REMOTE_FILE_WHY",
    "FileCopy",
    "IndexChoice",
    "IndexSetting",
    "LaunchPlan",
    "Occurrence",
    "OptionTable",
    "ReadText",
    "Rejection",
    "apply_edits",
    "choose_indexes",
    "display_path",
    "read_optional",
    "remote_links",
    "scan_options",
    "strtobool",
]

ReadText = Callable[[Path], str]
"""Reads a whole text file; raises `FileNotFoundError` (or another `OSError`) like
`Path.read_text`."""

EXTRA_INDEX_WHY = "projects could come from another index and bypass private-first routing"
FIND_LINKS_WHY = (
    "a remote find-links page is an index in disguise and could shadow private projects; "
    "use a local directory, or publish the files to the private index"
)


def remote_links(values: Iterable[str]) -> list[str]:
    """The find-links locations that are web pages (local directories and files are the
    user's own and stay allowed)."""
    return [v for v in values if v.strip().lower().startswith(("http://", "https://"))]


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


@dataclass
class LaunchPlan:
    """Everything the launcher needs to run one tool command through crane.

    `private` None means "run the tool unchanged": `command` is then the user's argv under
    the tool's name, and `public_url`, `env_set`, `env_unset` and `file_copies` are empty.
    Notes are one line each, without the `crane:` prefix (the printer adds it).
    """

    tool: str
    command: list[str]
    private: PrivateIndex | None
    public_url: str
    index_env_var: str
    env_set: dict[str, str] = field(default_factory=dict)
    env_unset: set[str] = field(default_factory=set)
    file_copies: list[FileCopy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lock_output: Path | None = None
    """A lock file the tool writes (`pip lock`): its proxy URLs are mapped back to the
    real index once the run is over."""

    @property
    def passthrough(self) -> bool:
        return self.private is None


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


@dataclass(frozen=True)
class IndexChoice:
    private: PrivateIndex | None
    public_url: str


def choose_indexes(
    *,
    tool: str,
    registry: Registry,
    chain: Sequence[IndexSetting],
    file_lines: Sequence[IndexSetting],
    public_default: Callable[[], str],
) -> IndexChoice:
    """Pick the registered index in play and the public index for this run.

    `chain` lists the tool's own index settings from the one it obeys down to the ones it
    overrides (command line, environment, config files). The first entry is the index the
    tool would use; `file_lines` are index lines of requirements files, which the caller
    has already checked for foreign indexes. Rules:

    - an unregistered URL on the command line is `UnknownIndexError` with the closest
      registered URL as a hint;
    - the registered indexes in play are the chain's first entry (when registered) and
      every registered requirements-file line; two different ones are a `ConfigError`;
    - the public index is the private index's own `public_index`, else the first
      unregistered URL the chain names (the index the user's tool uses anyway), else
      `public_default()`.
    """
    known = [index.url for index in registry]
    for setting in chain:
        if setting.explicit and registry.find(setting.url) is None:
            raise UnknownIndexError(setting.url, closest(_spelling(setting.url), known))
    in_play: list[tuple[PrivateIndex, IndexSetting]] = []
    candidates = [*chain[:1], *file_lines]
    for setting in candidates:
        index = registry.find(setting.url)
        if index is not None:
            in_play.append((index, setting))
    if not in_play:
        return IndexChoice(None, "")
    first_index, first_place = in_play[0]
    for index, setting in in_play[1:]:
        if index.url != first_index.url:
            raise ConfigError(
                f"{tool} would use two registered indexes, {first_index.url} "
                f"({first_place.place}) and {index.url} ({setting.place}); "
                "crane runs one private index per run"
            )
    if first_index.public_index:
        return IndexChoice(first_index, first_index.public_index)
    for setting in chain:
        if setting.explicit or registry.find(setting.url) is not None:
            continue
        try:
            return IndexChoice(first_index, normalise_url(setting.url))
        except UsageError:
            continue  # a local directory index cannot be the public fallback
    return IndexChoice(first_index, public_default())


def _spelling(url: str) -> str:
    try:
        return normalise_url(url)
    except UsageError:
        return url


_TRUE = {"y", "yes", "t", "true", "on", "1"}
_FALSE = {"n", "no", "f", "false", "off", "0"}


def strtobool(value: str) -> bool | None:
    """pip's and clap's boolean spelling: None for anything else (the tool fails on it)."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def read_optional(read_text: ReadText, path: Path) -> tuple[bool, str | None]:
    """(exists, text): a file that exists but cannot be read is (True, None).

    Tools skip unreadable config files rather than fail, and so does crane.
    """
    try:
        return True, read_text(path)
    except (FileNotFoundError, NotADirectoryError):
        return False, None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot be decoded ({exc.reason})") from None
    except OSError:
        return True, None


def display_path(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` when it lies below it, else absolute: how users name files."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# Command-line scanning.
#
# pip parses with optparse: long options may be abbreviated to any unambiguous prefix,
# `--opt=value` and `--opt value` both work, short options cluster (`-Ur file`) and take
# the rest of the token as their value (`-rfile`, so `-i=URL` means the URL "=URL").
# uv parses with clap: long options must be spelled out, and `-i=URL` means "URL".
# The scanner reports each option with enough of its spelling to remove it or swap its
# value without disturbing anything else on the command line.


@dataclass(frozen=True)
class OptionTable:
    """The options of one tool command, as its parser sees them.

    `aliases` maps every spelling to a canonical long name (`-i` and `--pypi-url` to
    `--index-url`); names missing from it are their own canonical form. `sensitive` lists
    canonical names crane must never misread: an abbreviation that could mean one of them
    is refused instead of guessed.
    """

    value_longs: frozenset[str]
    flag_longs: frozenset[str]
    value_shorts: frozenset[str]
    flag_shorts: frozenset[str]
    aliases: Mapping[str, str] = field(default_factory=dict)
    abbreviations: bool = False
    short_equals_strips: bool = False
    sensitive: frozenset[str] = frozenset()

    def canonical(self, name: str) -> str:
        return self.aliases.get(name, name)


@dataclass(frozen=True)
class Occurrence:
    """One option found on a command line.

    `index` is the token holding the option's name. When the value shares that token,
    `value_index` is None and `head` is the token's text before the value (`--index-url=`,
    `-Ui`); otherwise `value_index` is the next token. `keep` is what must stay of the
    token if this option is removed (`-U` of `-Ui`), often "".
    """

    name: str
    value: str | None
    index: int
    head: str
    value_index: int | None
    keep: str


def _match_long(name: str, table: OptionTable) -> str | None:
    known = table.value_longs | table.flag_longs
    if name in known:
        return name
    if not table.abbreviations:
        return None
    matches = sorted(option for option in known if option.startswith(name))
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1 and any(table.canonical(m) in table.sensitive for m in matches):
        raise UsageError(
            f"{name} is ambiguous ({', '.join(matches)}); spell the option out under crane"
        )
    return None


def scan_options(
    args: Sequence[str], table: OptionTable, *, start: int = 0, stop_at_positional: bool = False
) -> tuple[list[Occurrence], list[tuple[int, str]]]:
    """Options and positional arguments of `args[start:]`, in order.

    Unknown options count as flags. `--` ends the options. With `stop_at_positional` the
    scan ends at the first positional argument (pip's global options before the command).
    """
    found: list[Occurrence] = []
    positionals: list[tuple[int, str]] = []
    i = start
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals.extend((j, args[j]) for j in range(i + 1, len(args)))
            break
        if arg.startswith("--"):
            name, eq, attached = arg.partition("=")
            long = _match_long(name, table)
            if long is None:
                i += 1
                continue
            canonical = table.canonical(long)
            if long in table.value_longs:
                if eq:
                    found.append(Occurrence(canonical, attached, i, name + "=", None, ""))
                elif i + 1 < len(args):
                    found.append(Occurrence(canonical, args[i + 1], i, arg, i + 1, ""))
                    i += 1
            else:
                found.append(Occurrence(canonical, None, i, arg, None, ""))
            i += 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            position = 1
            while position < len(arg):
                letter = "-" + arg[position]
                keep = arg[:position] if position > 1 else ""
                if letter in table.value_shorts:
                    canonical = table.canonical(letter)
                    rest = arg[position + 1 :]
                    head = arg[: position + 1]
                    if table.short_equals_strips and rest.startswith("="):
                        rest = rest[1:]
                        head += "="
                    if rest:
                        found.append(Occurrence(canonical, rest, i, head, None, keep))
                    elif i + 1 < len(args):
                        found.append(Occurrence(canonical, args[i + 1], i, head, i + 1, keep))
                        i += 1
                    break
                found.append(Occurrence(table.canonical(letter), None, i, arg, None, keep))
                position += 1
            i += 1
            continue
        positionals.append((i, arg))
        if stop_at_positional:
            break
        i += 1
    return found, positionals


def apply_edits(
    args: Sequence[str],
    *,
    remove: Iterable[Occurrence] = (),
    replace: Iterable[tuple[Occurrence, str]] = (),
) -> list[str]:
    """`args` with options removed and option values swapped, each in the user's spelling."""
    tokens: list[str | None] = list(args)
    for occurrence in remove:
        tokens[occurrence.index] = occurrence.keep or None
        if occurrence.value_index is not None:
            tokens[occurrence.value_index] = None
    for occurrence, value in replace:
        if occurrence.value_index is None:
            tokens[occurrence.index] = occurrence.head + value
        else:
            tokens[occurrence.value_index] = value
    return [token for token in tokens if token is not None]
