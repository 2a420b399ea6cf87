"""Plan `crane pip ...`: which index pip would use, and how to put crane's proxy there.

pip's behaviour this follows (pip 26.3 source; the same rules hold back to pip 23):

- Command line. pip's main parser reads the general options up to the first positional
  argument, the command; the command's parser then reads every argument but the command
  name, so general options may come before or after it. Both are optparse parsers:
  unambiguous prefixes of long options are accepted (`--index` is `--index-url`,
  `--extra` is `--extra-index-url`); `--pypi-url` is another name of `--index-url`.
  The option tables below are pip 26.3's; an abbreviation that could mean an option that
  matters to crane and is ambiguous in them is refused rather than guessed.
- Configuration (`pip/_internal/configuration.py`): files are loaded in this order, later
  ones overriding earlier ones: global (`$XDG_CONFIG_DIRS/pip/pip.conf`, default
  `/etc/xdg/pip/pip.conf`, then `/etc/pip.conf`), user (`~/.pip/pip.conf`, then
  `$XDG_CONFIG_HOME/pip/pip.conf` or `~/.config/pip/pip.conf`), site
  (`sys.prefix/pip.conf`), then `PIP_CONFIG_FILE`. `PIP_CONFIG_FILE` equal to
  `os.devnull` loads no file at all; a `PIP_CONFIG_FILE` that exists replaces the user
  files. Keys are lower-cased with `_` read as `-`. Within the loaded files the command's
  section beats `[global]`; `PIP_<KEY>` environment variables beat both; empty values
  are ignored (`ConfigOptionParser._get_ordered_configuration_items`).
- `--isolated` (only that exact spelling, `cli/main.py`) makes pip ignore `PIP_*`
  variables and the user files, but not the global and site files or `PIP_CONFIG_FILE`.
  Crane hands pip its proxy through `PIP_INDEX_URL`, which `--isolated` ignores, so an
  isolated run with a registered index is refused.
- Requirements files: see `reqfiles`. Their `--index-url` beats everything above.
- `PIP_REQUIREMENT` / `PIP_CONSTRAINT` / `PIP_BUILD_CONSTRAINT` and the matching config
  keys name requirements files too (whitespace-separated), added to those of the command
  line; crane reads them and, when one needs a copy, points the variable at the copy.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import secrets
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import ConfigError
from crane_launch.launch.argv import Occurrence, OptionTable, apply_edits, scan_options, strtobool
from crane_launch.launch.files import ReadText, display_path, read_optional
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    PROXY_WHY,
    IndexSetting,
    LaunchPlan,
    Rejection,
    choose_indexes,
    remote_links,
)
from crane_launch.launch.reqfiles import Root, copy_value, plan_copies, walk_requirements

__all__ = [
    "FOREIGN_INDEX_WHY",
    "INDEX_COMMANDS",
    "ISOLATED_WHY",
    "pip_config_files",
    "plan_pip",
]

INDEX_COMMANDS = frozenset({"install", "download", "wheel", "index", "lock"})

FOREIGN_INDEX_WHY = (
    "pip lets a requirements file's index override the command line and the environment, "
    "so it would bypass crane's proxy; register the index or remove the line"
)
ISOLATED_WHY = (
    "it makes pip ignore PIP_INDEX_URL, the variable through which crane hands pip its proxy"
)

_GENERAL_VALUE = (
    "--cache-dir --cert --client-cert --default-timeout --exists-action --keyring-provider "
    "--local-log --log --log-file --proxy --python --resume-retries --retries --timeout "
    "--trusted-host --use-deprecated --use-feature"
)
_GENERAL_FLAG = (
    "--debug --disable-pip-version-check --help --isolated --no-cache-dir --no-color "
    "--no-input --no-proxy-env --no-python-version-warning --quiet --require-venv "
    "--require-virtualenv --verbose --version"
)
_SHARED_VALUE = (
    "--all-releases --extra-index-url --find-links --index-url --no-binary --only-binary "
    "--only-final --pypi-url --refresh-package --uploaded-prior-to"
)
_RESOLVING_VALUE = (
    "--build-constraint --constraint --group --progress-bar --requirement "
    "--requirements-from-script --source --source-dir --source-directory --src"
)
_RESOLVING_FLAG = (
    "--check-build-dependencies --ignore-requires-python --no-build-isolation --no-clean "
    "--no-dependencies --no-deps --no-index --no-require-hashes --only-dependencies "
    "--only-deps --pre --prefer-binary --require-hashes --use-pep517"
)
_PLATFORM_VALUE = "--abi --implementation --platform --python-version"
_COMMAND_OPTIONS: dict[str, tuple[str, str]] = {
    "install": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} {_PLATFORM_VALUE} --config-settings --editable "
        "--prefix --report --root --root-user-action --target --upgrade-strategy",
        f"{_RESOLVING_FLAG} --break-system-packages --compile --dry-run --force-reinstall "
        "--ignore-installed --no-compile --no-user --no-warn-conflicts "
        "--no-warn-script-location --upgrade --user",
    ),
    "download": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} {_PLATFORM_VALUE} --dest --destination-dir "
        "--destination-directory",
        _RESOLVING_FLAG,
    ),
    "wheel": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} --config-settings --editable --wheel-dir",
        f"{_RESOLVING_FLAG} --no-verify",
    ),
    "index": (
        f"{_SHARED_VALUE} {_PLATFORM_VALUE}",
        "--ignore-requires-python --json --no-index --pre --prefer-binary",
    ),
    "lock": (
        f"{_SHARED_VALUE} {_RESOLVING_VALUE} --config-settings --editable --output",
        _RESOLVING_FLAG,
    ),
}
_ALIASES = {
    "-i": "--index-url",
    "-o": "--output",
    "-f": "--find-links",
    "--pypi-url": "--index-url",
    "-r": "--requirement",
    "-c": "--constraint",
    "-h": "--help",
    "-V": "--version",
}
_SENSITIVE = frozenset(
    {
        "--index-url",
        "--extra-index-url",
        "--proxy",
        "--no-index",
        "--requirement",
        "--constraint",
        "--build-constraint",
        "--help",
    }
)
_VALUE_SHORTS = frozenset({"-r", "-c", "-e", "-f", "-i", "-t", "-d", "-w", "-o", "-C"})
_FLAG_SHORTS = frozenset({"-U", "-I", "-h", "-q", "-v", "-V"})

_GENERAL_TABLE = OptionTable(
    value_longs=frozenset(_GENERAL_VALUE.split()),
    flag_longs=frozenset(_GENERAL_FLAG.split()),
    value_shorts=frozenset(),
    flag_shorts=frozenset({"-h", "-q", "-v", "-V"}),
    aliases=_ALIASES,
    abbreviations=True,
    sensitive=_SENSITIVE,
)
_COMMAND_TABLES = {
    name: OptionTable(
        value_longs=frozenset(_GENERAL_VALUE.split() + values.split()),
        flag_longs=frozenset(_GENERAL_FLAG.split() + flags.split()),
        value_shorts=_VALUE_SHORTS,
        flag_shorts=_FLAG_SHORTS,
        aliases=_ALIASES,
        abbreviations=True,
        sensitive=_SENSITIVE,
    )
    for name, (values, flags) in _COMMAND_OPTIONS.items()
}
# Config keys and variables that name requirements files, with their option names.
_FILE_KEYS = {
    "requirement": "--requirement",
    "constraint": "--constraint",
    "build-constraint": "--build-constraint",
}
_INDEX_KEYS = frozenset({"index-url", "pypi-url"})
_GLOBAL, _COMMAND, _ENV = 0, 1, 2


def _key(name: str) -> str:
    """pip's `_normalize_name`: how a config or environment key is compared."""
    return name.lower().replace("_", "-").removeprefix("--")


class _Parser(configparser.RawConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return _key(optionstr)


@dataclass(frozen=True)
class _Value:
    key: str
    value: str
    place: str
    layer: int


@dataclass
class _Settings:
    """pip's configuration for one command, lowest precedence first."""

    values: list[_Value]

    def effective(self, keys: Iterable[str]) -> _Value | None:
        wanted = set(keys)
        best: _Value | None = None
        for value in self.values:
            if value.key in wanted and (best is None or value.layer >= best.layer):
                best = value
        return best

    def chain(self, keys: Iterable[str]) -> list[_Value]:
        """The effective value of each layer, environment first."""
        wanted = set(keys)
        chain: list[_Value] = []
        for layer in (_ENV, _COMMAND, _GLOBAL):
            found = [v for v in self.values if v.layer == layer and v.key in wanted]
            if found:
                chain.append(found[-1])
        return chain


def pip_config_files(
    environ: Mapping[str, str],
    *,
    home: Path,
    cwd: Path,
    site_prefix: Path | None,
    isolated: bool,
    read_text: ReadText,
    platform: str = sys.platform,
) -> list[Path]:
    """The config files pip would load, in loading order (later ones win)."""
    env_file = environ.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    files: list[Path] = []
    if platform == "darwin":
        files.append(Path("/Library/Application Support/pip/pip.conf"))
    else:
        dirs = [d.strip() for d in environ.get("XDG_CONFIG_DIRS", "").split(os.pathsep)]
        absolute = [d for d in dirs if d.startswith("/")] or ["/etc/xdg"]
        files.extend(Path(d) / "pip" / "pip.conf" for d in absolute)
        files.append(Path("/etc/pip.conf"))
    env_path = cwd / env_file if env_file else None
    env_exists = env_path is not None and read_optional(read_text, env_path)[0]
    if not isolated and not env_exists:
        files.append(home / ".pip" / "pip.conf")
        files.append(_user_config_dir(environ, home, platform, read_text) / "pip.conf")
    if site_prefix is not None:
        files.append(site_prefix / "pip.conf")
    if env_path is not None:
        files.append(env_path)
    return files


def _user_config_dir(
    environ: Mapping[str, str], home: Path, platform: str, read_text: ReadText
) -> Path:
    if platform == "darwin":
        # pip uses ~/Library/Application Support/pip when that directory exists. Reading a
        # directory fails with IsADirectoryError, which is how `read_optional` sees it.
        support = home / "Library" / "Application Support" / "pip"
        if read_optional(read_text, support)[0]:
            return support
        return home / ".config" / "pip"
    xdg = environ.get("XDG_CONFIG_HOME", "").strip()
    return (Path(xdg) if xdg.startswith("/") else home / ".config") / "pip"


def _load_settings(
    files: Sequence[Path],
    environ: Mapping[str, str],
    *,
    command: str,
    isolated: bool,
    read_text: ReadText,
) -> _Settings:
    values: list[_Value] = []
    for path in files:
        _, text = read_optional(read_text, path)
        if text is None:
            continue
        parser = _Parser()
        try:
            parser.read_string(text, source=str(path))
        except configparser.Error as exc:
            message = str(exc).splitlines()[0]
            raise ConfigError(f"pip config file {path}: cannot be parsed ({message})") from None
        for section, layer in (("global", _GLOBAL), (command, _COMMAND)):
            if not parser.has_section(section):
                continue
            for key, value in parser.items(section):
                if value:
                    place = f"pip config file {path}: [{section}]"
                    values.append(_Value(key, value.strip(), place, layer))
    if not isolated:
        for name, value in environ.items():
            if name.startswith("PIP_") and value and name[4:].lower() not in ("version", "help"):
                key = _key(name[4:])
                values.append(_Value(key, value, f"environment variable {name}", _ENV))
    values.sort(key=lambda v: v.layer)
    return _Settings(values)


def _site_prefix(
    python: str | None, environ: Mapping[str, str], cwd: Path, read_text: ReadText
) -> Path | None:
    """Where pip's site config lives: the prefix of the Python that runs pip."""
    if python and "/" in python:
        candidate = (cwd / python).parent.parent
        if read_optional(read_text, candidate / "pyvenv.cfg")[1] is not None:
            return candidate
    virtual_env = environ.get("VIRTUAL_ENV")
    return Path(virtual_env) if virtual_env else None


def _remap(occurrence: Occurrence, skipped: int) -> Occurrence:
    """An occurrence found with the command name left out, placed back in the full argv."""

    def shift(index: int) -> int:
        return index + 1 if index >= skipped else index

    value_index = occurrence.value_index
    return dataclasses.replace(
        occurrence,
        index=shift(occurrence.index),
        value_index=None if value_index is None else shift(value_index),
    )


def plan_pip(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
    python: str | None = None,
    site_prefix: Path | None = None,
    platform: str = sys.platform,
    copy_token: str | None = None,
) -> LaunchPlan:
    """The plan for `pip *argv` (or `python -m pip *argv` when `python` is given).

    `site_prefix` is the `sys.prefix` of the Python that will run pip, for its site config
    file; by default the virtual environment of `python`, else `$VIRTUAL_ENV`.
    `copy_token` names the requirements-file copies (random by default).

    Raises `UnknownIndexError` for an unregistered `-i` on the command line,
    `RejectedSettingError` for a setting that would bypass crane's proxy, and
    `ConfigError` for two registered indexes in one run or an unreadable pip config.
    """
    args = list(argv)
    launcher = [python, "-m", "pip"] if python else ["pip"]

    def unchanged(*notes: str) -> LaunchPlan:
        return LaunchPlan(
            tool="pip",
            command=[*launcher, *args],
            private=None,
            public_url="",
            index_env_var="PIP_INDEX_URL",
            notes=list(notes),
        )

    _, positionals = scan_options(args, _GENERAL_TABLE, stop_at_positional=True)
    if not positionals or positionals[0][1] not in INDEX_COMMANDS:
        return unchanged()
    command_at, command = positionals[0]
    command_args = args[:command_at] + args[command_at + 1 :]
    found, _ = scan_options(command_args, _COMMAND_TABLES[command])
    found = [_remap(o, command_at) for o in found]
    if any(o.name in ("--help", "--version") for o in found):
        return unchanged()

    isolated = "--isolated" in command_args
    if site_prefix is None:
        site_prefix = _site_prefix(python, environ, cwd, read_text)
    files = pip_config_files(
        environ,
        home=home,
        cwd=cwd,
        site_prefix=site_prefix,
        isolated=isolated,
        read_text=read_text,
        platform=platform,
    )
    settings = _load_settings(
        files, environ, command=command, isolated=isolated, read_text=read_text
    )

    no_index = next((o for o in found if o.name == "--no-index"), None)
    if no_index is not None:
        return unchanged("--no-index on the command line: pip uses no index; running pip unchanged")
    no_index_setting = settings.effective({"no-index"})
    if no_index_setting is not None and strtobool(no_index_setting.value):
        return unchanged(
            f"no-index is set ({no_index_setting.place}): pip uses no index; running pip unchanged"
        )

    rejections: list[Rejection] = []
    for o in found:
        if o.name == "--extra-index-url" and o.value:
            rejections.append(Rejection("command line", "--extra-index-url", EXTRA_INDEX_WHY))
        elif o.name == "--proxy" and o.value:
            rejections.append(Rejection("command line", "--proxy", PROXY_WHY))
        elif o.name == "--find-links" and o.value:
            for url in remote_links([o.value]):
                rejections.append(Rejection("command line", f"--find-links {url}", FIND_LINKS_WHY))
    for value in sorted(settings.values, key=lambda v: -v.layer):
        if value.key == "extra-index-url" and value.value.split():
            rejections.append(Rejection(value.place, "extra-index-url", EXTRA_INDEX_WHY))
        elif value.key == "proxy":
            rejections.append(Rejection(value.place, "proxy", PROXY_WHY))
        elif value.key == "find-links":
            for url in remote_links(value.value.split()):
                rejections.append(Rejection(value.place, f"find-links {url}", FIND_LINKS_WHY))

    roots: list[Root] = []
    configured_roots: dict[str, tuple[_Value, list[Root]]] = {}
    for key, option in _FILE_KEYS.items():
        setting = settings.effective({key})
        if setting is not None:
            these = [Root(option, v, setting.place) for v in setting.value.split()]
            configured_roots[key] = (setting, these)
            roots.extend(these)
    argv_roots: list[tuple[Occurrence, Root]] = []
    for o in found:
        if o.name in _FILE_KEYS.values() and o.value:
            root = Root(o.name, o.value, "command line")
            argv_roots.append((o, root))
            roots.append(root)
    walk = walk_requirements(roots, dialect="pip", cwd=cwd, environ=environ, read_text=read_text)
    if walk.no_index_places:
        return unchanged(
            f"--no-index in {walk.no_index_places[0]}: pip uses no index; running pip unchanged"
        )
    rejections.extend(walk.rejections)
    foreign_lines, file_lines = walk.sort_index_lines(registry, FOREIGN_INDEX_WHY)
    rejections.extend(foreign_lines)

    index_options = [o for o in found if o.name == "--index-url" and o.value]
    chain = [IndexSetting(o.value or "", "command line", explicit=True) for o in index_options]
    chain.reverse()  # optparse keeps the last one
    chain.extend(IndexSetting(v.value, v.place) for v in settings.chain(_INDEX_KEYS))
    choice = choose_indexes(
        tool="pip",
        registry=registry,
        chain=chain,
        file_lines=file_lines,
        public_default=builtin_public_index,
    )
    if choice.private is None:
        return unchanged("no registered index in play; running pip unchanged")
    if isolated:
        raise Rejection("command line", "--isolated", ISOLATED_WHY).error()
    if rejections:
        raise rejections[0].error()

    token = copy_token or secrets.token_hex(4)
    copies = plan_copies(walk, strip=lambda url: registry.find(url) is not None, token=token)
    replace: list[tuple[Occurrence, str]] = []
    for o, root in argv_roots:
        path = walk.root_paths.get(root)
        if path in copies:
            replace.append((o, copy_value(root.value, copies[path].copy)))
    command_line = apply_edits(args, remove=index_options, replace=replace)

    env_set: dict[str, str] = {}
    for key, (_setting, these) in configured_roots.items():
        swapped = [
            copy_value(r.value, copies[p].copy)
            if (p := walk.root_paths.get(r)) in copies
            else r.value
            for r in these
        ]
        if swapped != [r.value for r in these]:
            env_set["PIP_" + key.upper().replace("-", "_")] = " ".join(swapped)
    env_unset = {
        name for name in environ if name.startswith("PIP_") and _key(name[4:]) in _INDEX_KEYS
    }

    notes: list[str] = []
    if copies:
        shown = ", ".join(display_path(path, cwd) for path in copies)
        notes.append(f"reading requirements through copies without the index line: {shown}")
    lock_output = None
    if command == "lock":
        outputs = [o.value for o in found if o.name == "--output" and o.value]
        target = outputs[-1] if outputs else "pylock.toml"
        if target == "-":
            notes.append(
                "pip lock writes to standard output: its URLs are crane's one-run proxy "
                "addresses; write to a file to get the real index URLs"
            )
        else:
            lock_output = cwd / target
    return LaunchPlan(
        tool="pip",
        command=[*launcher, *command_line],
        private=choice.private,
        public_url=choice.public_url,
        index_env_var="PIP_INDEX_URL",
        env_set=env_set,
        env_unset=env_unset,
        file_copies=list(copies.values()),
        notes=notes,
        lock_output=lock_output,
    )
