"""Plan `crane uv pip ...`: which index uv's pip interface would use, and how to proxy it.

uv's behaviour this follows (uv 0.13 source: `crates/uv/src/lib.rs`,
`crates/uv/src/settings.rs`, `crates/uv-settings/src/lib.rs`,
`crates/uv-distribution-types/src/index.rs`; checked against uv 0.13.9):

- Command line (clap): long options are spelled out in full (no abbreviations), as
  `--opt value` or `--opt=value`; short options take `-i URL`, `-iURL` or `-i=URL`.
  Global options (`--no-config`, `--config-file`, `--directory`, ...) may stand anywhere.
  `uv pip compile` and `uv pip sync` take their requirements files as positional
  arguments, `uv pip install` through `-r`.
- Index order: the indexes from the command line and the environment come first
  (`--default-index`/`UV_DEFAULT_INDEX`, then `--index`/`UV_INDEX`,
  `--extra-index-url`/`UV_EXTRA_INDEX_URL`, `--index-url`/`UV_INDEX_URL`), then the
  config's (`[pip]` before top level: `index`, `extra-index-url`, `index-url`), then the
  requirements files'. The first index marked default is the default index; later
  defaults are ignored. So crane's proxy, set as `UV_DEFAULT_INDEX`, wins over every
  configured default and over a requirements file's `--index-url`: uv needs no file
  copies. Every non-default index is searched too, hence the rejections.
- Config files: `--config-file`/`UV_CONFIG_FILE` replaces all others; `--no-config`,
  `UV_NO_CONFIG` and the deprecated `--isolated` load none. Otherwise the project file
  is the nearest `uv.toml`, or `pyproject.toml` with a `[tool.uv]` table, found walking
  up from the workspace root (or from the current directory outside a workspace),
  merged with the user file (`$XDG_CONFIG_HOME/uv/uv.toml`, default
  `~/.config/uv/uv.toml`) and the first system file (`$XDG_CONFIG_DIRS/uv/uv.toml`,
  default `/etc/xdg/uv/uv.toml`, then `/etc/uv/uv.toml`). Scalars: project beats user
  beats system; lists are concatenated. `--directory`/`UV_WORKING_DIR` changes the
  working directory first; `--project`/`UV_PROJECT` where discovery starts.
- `[[index]]` entries with `explicit = true` serve only the packages pinned to them in
  `[tool.uv.sources]`, and `format = "flat"` entries are find-links; neither competes
  for other projects, so crane allows them like `--find-links`.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crane_launch.config import Registry, builtin_public_index
from crane_launch.errors import ConfigError
from crane_launch.launch.argv import OptionTable, apply_edits, scan_options, strtobool
from crane_launch.launch.files import ReadText, read_optional
from crane_launch.launch.plan import (
    EXTRA_INDEX_WHY,
    FIND_LINKS_WHY,
    IndexSetting,
    LaunchPlan,
    Rejection,
    choose_indexes,
    remote_links,
)
from crane_launch.launch.reqfiles import Root, walk_requirements

__all__ = ["EMIT_WHY", "FOREIGN_INDEX_WHY", "INDEX_COMMANDS", "plan_uv_pip", "uv_config_files"]

INDEX_COMMANDS = frozenset({"install", "compile", "sync"})

FOREIGN_INDEX_WHY = (
    "under crane uv would ignore it, because crane's proxy is the default index; "
    "register the index or remove the line"
)
EMIT_WHY = "the output file would record crane's one-run proxy address instead of the index"

_VALUE_LONGS = (
    "--allow-insecure-host --annotation-style --build-constraint --build-constraints "
    "--cache-dir --cert --color --config-file --config-setting --config-settings "
    "--config-settings-package --constraint --constraints --custom-compile-command "
    "--default-index --directory --editable --exclude-newer --exclude-newer-package "
    "--excludes --extra --extra-index-url --find-links --fork-strategy --format --group "
    "--index --index-strategy --index-url --keyring-provider --link-mode --no-binary "
    "--no-build-isolation-package --no-editable-package --no-emit-package "
    "--no-sources-package --only-binary --output-file --output-format --override "
    "--overrides --prefix --prerelease --prerelease-package --preview-features --project "
    "--python --python-platform --python-preference --python-version --refresh-package "
    "--reinstall-package --requirement --requirements --resolution --target "
    "--torch-backend --upgrade-group --upgrade-package"
)
_FLAG_LONGS = (
    "--all-extras --allow-empty-requirements --break-system-packages --check "
    "--compile-bytecode --dry-run --emit-build-options --emit-find-links "
    "--emit-index-annotation --emit-index-url --exact --generate-hashes --help --isolated "
    "--managed-python --native-tls --no-allow-empty-requirements --no-annotate "
    "--no-break-system-packages --no-build --no-build-isolation --no-cache --no-config "
    "--no-deps --no-editable --no-header --no-index --no-managed-python --no-progress "
    "--no-python-downloads --no-sources --no-strip-extras --no-strip-markers "
    "--no-verify-hashes --offline --preview --quiet --refresh --reinstall "
    "--require-build-hashes --require-hashes --strict --system --system-certs --universal "
    "--upgrade --user --verbose --version"
)
_ALIASES = {
    "-i": "--index-url",
    "-f": "--find-links",
    "-r": "--requirements",
    "--requirement": "--requirements",
    "-c": "--constraints",
    "--constraint": "--constraints",
    "--override": "--overrides",
    "-b": "--build-constraints",
    "--build-constraint": "--build-constraints",
    "-h": "--help",
    "-V": "--version",
}
_TABLE = OptionTable(
    value_longs=frozenset(_VALUE_LONGS.split()),
    flag_longs=frozenset(_FLAG_LONGS.split()),
    value_shorts=frozenset({"-r", "-e", "-c", "-b", "-t", "-i", "-f", "-P", "-C", "-p", "-o"}),
    flag_shorts=frozenset({"-U", "-n", "-q", "-v", "-h", "-V"}),
    aliases=_ALIASES,
    short_equals_strips=True,
)
# Options and variables that name requirements-format files.
_FILE_OPTIONS = {
    "--requirements": None,
    "--constraints": "UV_CONSTRAINT",
    "--overrides": "UV_OVERRIDE",
    "--build-constraints": "UV_BUILD_CONSTRAINT",
    "--excludes": "UV_EXCLUDE",
}


@dataclass
class _UvFile:
    """The index settings of one uv config file."""

    path: Path
    prefix: str  # "" for uv.toml, "tool.uv" for pyproject.toml
    top: dict[str, Any] = field(default_factory=dict)
    pip: dict[str, Any] = field(default_factory=dict)

    def place(self, table: str) -> str:
        name = ".".join(part for part in (self.prefix, table) if part)
        return f"uv config file {self.path}" + (f": [{name}]" if name else "")

    def index_place(self, table: str) -> str:
        name = ".".join(part for part in (self.prefix, table, "index") if part)
        return f"uv config file {self.path}: [[{name}]]"


def _read_toml(path: Path, read_text: ReadText) -> tuple[bool, dict[str, Any] | None]:
    exists, text = read_optional(read_text, path)
    if text is None:
        return exists, None
    try:
        return True, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if path.name == "pyproject.toml":
            return True, None  # uv warns and goes on searching
        raise ConfigError(f"uv config file {path}: cannot be parsed ({exc})") from None


def _uv_file(path: Path, data: dict[str, Any], prefix: str) -> _UvFile:
    top = data
    if prefix:
        tool = data.get("tool")
        top = tool.get("uv", {}) if isinstance(tool, dict) else {}
        top = top if isinstance(top, dict) else {}
    pip = top.get("pip")
    return _UvFile(path, prefix, top, pip if isinstance(pip, dict) else {})


def _find_project_config(start: Path, read_text: ReadText) -> _UvFile | None:
    """uv's `FilesystemOptions::find`: the nearest uv.toml, or pyproject.toml with [tool.uv]."""
    for directory in (start, *start.parents):
        _, data = _read_toml(directory / "uv.toml", read_text)
        if data is not None:
            return _uv_file(directory / "uv.toml", data, "")
        _, data = _read_toml(directory / "pyproject.toml", read_text)
        if data is not None:
            tool = data.get("tool")
            if isinstance(tool, dict) and isinstance(tool.get("uv"), dict):
                return _uv_file(directory / "pyproject.toml", data, "tool.uv")
    return None


def _workspace_root(project_dir: Path, read_text: ReadText) -> Path:
    """Where uv starts looking for project config: the workspace root when there is one.

    uv's `Workspace::discover`: the nearest pyproject.toml is the project; an explicit
    `[tool.uv.workspace]` above it that lists it as a member (glob patterns, matched one
    path segment at a time here) is the root. Without a usable pyproject.toml uv falls
    back to searching from the project directory itself.
    """
    for directory in (project_dir, *project_dir.parents):
        exists, data = _read_toml(directory / "pyproject.toml", read_text)
        if exists:
            break
    else:
        return project_dir
    if data is None:
        return project_dir
    uv = _table(_table(data, "tool"), "uv")
    if uv.get("managed") is False:
        return project_dir
    if "workspace" in uv:
        return directory
    if "project" not in data:
        return project_dir
    for parent in directory.parents:
        _, above = _read_toml(parent / "pyproject.toml", read_text)
        if above is None:
            continue
        workspace = _table(_table(_table(above, "tool"), "uv"), "workspace")
        if not workspace and "workspace" not in _table(_table(above, "tool"), "uv"):
            continue
        relative = directory.relative_to(parent).as_posix()
        members = [m for m in workspace.get("members", []) if isinstance(m, str)]
        excluded = [m for m in workspace.get("exclude", []) if isinstance(m, str)]
        if _glob_match(relative, members) and not _glob_match(relative, excluded):
            return parent
        return directory
    return directory


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _glob_match(relative: str, patterns: Sequence[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        pattern_parts = pattern.strip("/").removeprefix("./").split("/")
        if len(pattern_parts) == len(parts) and all(
            fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, pattern_parts, strict=True)
        ):
            return True
    return False


def uv_config_files(
    environ: Mapping[str, str],
    *,
    cwd: Path,
    home: Path,
    config_file: str | None,
    no_config: bool,
    project: str | None,
    read_text: ReadText,
) -> list[_UvFile]:
    """The config files uv would merge, highest precedence first."""
    if config_file is not None:
        path = cwd / config_file
        _, data = _read_toml(path, read_text)
        if data is None:
            raise ConfigError(f"uv config file {path}: cannot be read")
        return [_uv_file(path, data, "")]
    if no_config:
        return []
    files: list[_UvFile] = []
    project_dir = cwd / project if project else cwd
    found = _find_project_config(_workspace_root(project_dir, read_text), read_text)
    if found is not None:
        files.append(found)
    xdg_home = environ.get("XDG_CONFIG_HOME", "")
    user_dir = Path(xdg_home) if xdg_home.startswith("/") else home / ".config"
    _, data = _read_toml(user_dir / "uv" / "uv.toml", read_text)
    if data is not None:
        files.append(_uv_file(user_dir / "uv" / "uv.toml", data, ""))
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "") or "/etc/xdg"
    candidates = []
    for directory in xdg_dirs.split(":"):  # uv splits on ':' itself, empty entry ends it
        if not directory:
            break
        candidates.append(Path(directory) / "uv" / "uv.toml")
    candidates.append(Path("/etc/uv/uv.toml"))
    for path in candidates:
        _, data = _read_toml(path, read_text)
        if data is not None:
            files.append(_uv_file(path, data, ""))
            break
    return files


def _first_scalar(files: Sequence[_UvFile], table: str, key: str) -> tuple[Any, str] | None:
    for file in files:
        source = file.pip if table == "pip" else file.top
        if key in source:
            return source[key], file.place(table)
    return None


def _env_list(environ: Mapping[str, str], name: str) -> list[str]:
    return environ.get(name, "").split()


def _index_url(value: str) -> str:
    """The URL of `[name=]url`, as uv's `Index::from_str` splits it."""
    name, eq, url = value.partition("=")
    return url if eq and ":" not in name else value


def plan_uv_pip(
    argv: Sequence[str],
    *,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
) -> LaunchPlan:
    """The plan for `uv *argv`, where `argv` is `["pip", <command>, ...]`.

    Raises `UnknownIndexError` for an unregistered `--index-url`/`--default-index` on the
    command line, `RejectedSettingError` for extra indexes and for output that would
    record the proxy's address, and `ConfigError` for two registered indexes in one run
    or a uv config file that cannot be parsed.
    """
    args = list(argv)

    def unchanged(*notes: str) -> LaunchPlan:
        return LaunchPlan(
            tool="uv",
            command=["uv", *args],
            private=None,
            public_url="",
            index_env_var="UV_DEFAULT_INDEX",
            notes=list(notes),
        )

    found, positionals = scan_options(args, _TABLE)
    words = [word for _, word in positionals]
    if words[:1] != ["pip"] or len(words) < 2 or words[1] not in INDEX_COMMANDS:
        return unchanged()
    command = words[1]
    if any(o.name in ("--help", "--version") for o in found):
        return unchanged()

    def last(name: str) -> str | None:
        values = [o.value for o in found if o.name == name and o.value]
        return values[-1] if values else None

    directory = last("--directory") or environ.get("UV_WORKING_DIR") or None
    directory = directory or environ.get("UV_WORKING_DIRECTORY") or None
    workdir = cwd / directory if directory else cwd
    names = {o.name for o in found}
    no_config = (
        "--no-config" in names
        or "--isolated" in names
        or bool(strtobool(environ.get("UV_NO_CONFIG", "")))
    )
    files = uv_config_files(
        environ,
        cwd=workdir,
        home=home,
        config_file=last("--config-file") or environ.get("UV_CONFIG_FILE") or None,
        no_config=no_config,
        project=last("--project") or environ.get("UV_PROJECT") or None,
        read_text=read_text,
    )

    if "--no-index" in names:
        return unchanged("--no-index on the command line: uv uses no index; running uv unchanged")
    no_index = _first_scalar(files, "pip", "no-index") or _first_scalar(files, "", "no-index")
    if no_index is not None and no_index[0] is True:
        return unchanged(f"no-index is set ({no_index[1]}): uv uses no index; running uv unchanged")

    rejections: list[Rejection] = []
    for o in found:
        if o.name in ("--extra-index-url", "--index") and o.value:
            rejections.append(Rejection("command line", o.name, EXTRA_INDEX_WHY))
        elif o.name in ("--emit-index-url", "--emit-index-annotation"):
            rejections.append(Rejection("command line", o.name, EMIT_WHY))
        elif o.name == "--find-links" and o.value:
            for url in remote_links([o.value]):
                rejections.append(Rejection("command line", f"--find-links {url}", FIND_LINKS_WHY))
    for name in ("UV_EXTRA_INDEX_URL", "UV_INDEX"):
        if _env_list(environ, name):
            what = "extra-index-url" if name == "UV_EXTRA_INDEX_URL" else "index"
            rejections.append(Rejection(f"environment variable {name}", what, EXTRA_INDEX_WHY))
    for url in remote_links(environ.get("UV_FIND_LINKS", "").replace(",", " ").split()):
        place = "environment variable UV_FIND_LINKS"
        rejections.append(Rejection(place, f"find-links {url}", FIND_LINKS_WHY))
    chain_config: list[IndexSetting] = []
    for file in files:
        for table, source in (("pip", file.pip), ("", file.top)):
            extra = source.get("extra-index-url")
            if isinstance(extra, list) and extra:
                rejections.append(Rejection(file.place(table), "extra-index-url", EXTRA_INDEX_WHY))
            links = source.get("find-links")
            for url in (
                remote_links(v for v in links if isinstance(v, str))
                if isinstance(links, list)
                else []
            ):
                rejections.append(Rejection(file.place(table), f"find-links {url}", FIND_LINKS_WHY))
            if table == "pip":
                for key in ("emit-index-url", "emit-index-annotation"):
                    if source.get(key) is True:
                        rejections.append(Rejection(file.place(table), key, EMIT_WHY))
    for table in ("pip", ""):
        for file in files:
            source = file.pip if table == "pip" else file.top
            entries = source.get("index")
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                    continue
                url = entry["url"]
                place = file.index_place(table)
                if entry.get("default") is True:
                    chain_config.append(IndexSetting(url, place))
                elif entry.get("explicit") is True:
                    continue
                elif entry.get("format") == "flat":
                    for link in remote_links([url]):
                        what = f"flat index {link}"
                        rejections.append(Rejection(place, what, FIND_LINKS_WHY))
                else:
                    what = f"index {url} without default = true"
                    rejections.append(Rejection(place, what, EXTRA_INDEX_WHY))
    index_url_setting = _first_scalar(files, "pip", "index-url") or _first_scalar(
        files, "", "index-url"
    )
    if index_url_setting is not None and isinstance(index_url_setting[0], str):
        chain_config.append(IndexSetting(index_url_setting[0], index_url_setting[1]))

    roots: list[Root] = []
    for o in found:
        if o.name in _FILE_OPTIONS and o.value:
            roots.append(Root(o.name, o.value, "command line"))
    for option, variable in _FILE_OPTIONS.items():
        if variable and not last(option):
            for value in _env_list(environ, variable):
                roots.append(Root(option, value, f"environment variable {variable}"))
    if command in ("compile", "sync"):
        roots.extend(Root("source file", word, "command line") for word in words[2:])
    walk = walk_requirements(roots, dialect="uv", cwd=workdir, environ=environ, read_text=read_text)
    if walk.no_index_places:
        return unchanged(
            f"--no-index in {walk.no_index_places[0]}: uv uses no index; running uv unchanged"
        )
    rejections.extend(walk.rejections)
    foreign_lines, file_lines = walk.sort_index_lines(registry, FOREIGN_INDEX_WHY)
    rejections.extend(foreign_lines)

    chain: list[IndexSetting] = []
    index_options = [o for o in found if o.name in ("--default-index", "--index-url") and o.value]
    default_index = last("--default-index")
    if default_index is not None:
        chain.append(IndexSetting(_index_url(default_index), "command line", explicit=True))
    elif environ.get("UV_DEFAULT_INDEX"):
        value = environ["UV_DEFAULT_INDEX"]
        chain.append(IndexSetting(_index_url(value), "environment variable UV_DEFAULT_INDEX"))
    index_url = last("--index-url")
    if index_url is not None:
        chain.append(IndexSetting(index_url, "command line", explicit=True))
    elif environ.get("UV_INDEX_URL"):
        chain.append(IndexSetting(environ["UV_INDEX_URL"], "environment variable UV_INDEX_URL"))
    chain.extend(
        IndexSetting(_index_url(o.value or ""), "command line", explicit=True)
        for o in index_options
        if o.value not in (default_index, index_url)
    )
    chain.extend(chain_config)
    choice = choose_indexes(
        tool="uv",
        registry=registry,
        chain=chain,
        file_lines=file_lines,
        public_default=builtin_public_index,
    )
    if choice.private is None:
        return unchanged("no registered index in play; running uv unchanged")
    if rejections:
        raise rejections[0].error()

    notes: list[str] = []
    if command == "compile" and index_options:
        notes.append(
            "the output's header shows the command without its index option; "
            "use --custom-compile-command to record another"
        )
    return LaunchPlan(
        tool="uv",
        command=["uv", *apply_edits(args, remove=index_options)],
        private=choice.private,
        public_url=choice.public_url,
        index_env_var="UV_DEFAULT_INDEX",
        env_unset={name for name in ("UV_INDEX_URL", "UV_DEFAULT_INDEX") if name in environ},
        notes=notes,
    )
