"""Command-line scanning for the planners: options as the tool's own parser sees them.

pip parses with optparse: long options may be abbreviated to any unambiguous prefix,
`--opt=value` and `--opt value` both work, short options cluster (`-Ur file`) and take
the rest of the token as their value (`-rfile`, so `-i=URL` means the URL "=URL").
uv parses with clap: long options must be spelled out, and `-i=URL` means "URL".
The scanner reports each option with enough of its spelling to remove it or swap its
value without disturbing anything else on the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from crane_launch.errors import UsageError

__all__ = ["Occurrence", "OptionTable", "apply_edits", "scan_options", "strtobool"]

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
            i = _scan_long(args, i, table, found)
        elif arg.startswith("-") and len(arg) > 1:
            i = _scan_short_cluster(args, i, table, found)
        else:
            positionals.append((i, arg))
            if stop_at_positional:
                break
            i += 1
    return found, positionals


def _scan_long(args: Sequence[str], i: int, table: OptionTable, found: list[Occurrence]) -> int:
    """Scan the long option at `args[i]` into `found`; the index of the next token."""
    arg = args[i]
    name, eq, attached = arg.partition("=")
    long = _match_long(name, table)
    if long is None:
        return i + 1
    canonical = table.canonical(long)
    if long not in table.value_longs:
        found.append(Occurrence(canonical, None, i, arg, None, ""))
    elif eq:
        found.append(Occurrence(canonical, attached, i, name + "=", None, ""))
    elif i + 1 < len(args):
        found.append(Occurrence(canonical, args[i + 1], i, arg, i + 1, ""))
        return i + 2
    return i + 1


def _scan_short_cluster(
    args: Sequence[str], i: int, table: OptionTable, found: list[Occurrence]
) -> int:
    """Scan the short options clustered in `args[i]` (`-Ur file`) into `found`; the index
    of the next token. The first option that takes a value takes the rest of the token."""
    arg = args[i]
    for position in range(1, len(arg)):
        letter = "-" + arg[position]
        keep = arg[:position] if position > 1 else ""
        if letter not in table.value_shorts:
            found.append(Occurrence(table.canonical(letter), None, i, arg, None, keep))
            continue
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
            return i + 2
        return i + 1
    return i + 1


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
