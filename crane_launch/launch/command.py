"""Plan `crane run [-i URL] -- COMMAND ...`: any command, with both doors in its environment.

tox, nox, hatch, pip-tools, a shell script or a Makefile start pip, uv or pdm themselves,
with arguments crane never sees. So crane reads no command line here: it hands every such
tool the index door through the variables they read (`PIP_INDEX_URL`, `UV_DEFAULT_INDEX`,
`PDM_PYPI_URL`), and the guard does the rest (every child gets the transparent door as
its proxy and the run's CA in every trust variable, like every crane run).

- The index: `-i URL` (registered), else the one `CRANE_INDEX_URL` describes, else the only
  registered index; with several, an error lists them.
- Refused, as everywhere: an extra index, a proxy or a remote find-links page in the pip
  settings every pip of the run reads (`PIP_*`, `PIP_CONFIG_FILE`, the user and global
  pip.conf), and in uv's (`UV_EXTRA_INDEX_URL`, `UV_INDEX`, `UV_FIND_LINKS`, the user and
  system uv.toml). A project's own files are the tools' business: the guard refuses at run
  time what they would take elsewhere.
- The public index (for what the private index lacks): the private index's registered one,
  else the first unregistered index of `PIP_INDEX_URL`, `UV_DEFAULT_INDEX`, `UV_INDEX_URL`,
  else pip's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from crane_launch.config import PrivateIndex, Registry, builtin_public_index, closest, normalise_url
from crane_launch.errors import ConfigError, UnknownIndexError, UsageError
from crane_launch.launch.files import ReadText
from crane_launch.launch.pip import settings_refusals
from crane_launch.launch.pip_config import PipSettings, read_pip_settings
from crane_launch.launch.plan import IndexDoorMode, Plan, RecordedUrls, Rejection, local_location
from crane_launch.launch.uv import (
    EMIT_WHY,
    config_refusals,
    environment_refusals,
    settings_file_refusals,
)
from crane_launch.launch.uv import read_command_line as read_uv_command_line
from crane_launch.launch.uv_settings import split_index_value, uv_config_files
from crane_launch.launch.uv_tool import RECEIPT, tool_directory

__all__ = ["INDEX_VARIABLES", "plan_command", "public_index_for"]

INDEX_VARIABLES = ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "PDM_PYPI_URL")
"""The variables that carry the index door to the tools a command starts."""
_PUBLIC_VARIABLES = ("PIP_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX_URL")


def plan_command(
    command: Sequence[str],
    *,
    index_url: str | None,
    registry: Registry,
    environ: Mapping[str, str],
    cwd: Path,
    home: Path,
    read_text: ReadText = Path.read_text,
) -> Plan:
    """The plan for `crane run [-i index_url] -- *command`."""
    if not command:
        raise UsageError("crane run needs a command: crane run [-i URL] -- COMMAND [ARGS]...")
    index = _the_index(index_url, registry)
    _refuse_emitted_index(command, environ, cwd=cwd, home=home, read_text=read_text)
    settings = read_pip_settings(  # the active environment's pip.conf too, when there is one
        environ,
        command="install",
        isolated=False,
        python=None,
        site_prefix=None,
        home=home,
        cwd=cwd,
        read_text=read_text,
    )
    refused = [
        *settings_refusals(settings),
        *_environment_refusals(environ, registry),
        *settings_file_refusals(environ, cwd=cwd, home=home, read_text=read_text, user_level=True),
    ]
    if refused:
        raise refused[0].error()
    links = _local_find_links(settings, environ, cwd)
    mode = IndexDoorMode(
        index,
        public_index_for(index, environ, registry),
        INDEX_VARIABLES[0],
        also_env_vars=INDEX_VARIABLES[1:],
        env_unset=frozenset(name for name in ("UV_INDEX_URL",) if name in environ),
        find_links=links,
        # a `uv tool install|upgrade` in the command records the door in its receipt
        recorded=(RecordedUrls(tool_directory(environ, cwd, home), f"*/{RECEIPT}"),),
    )
    tool = Path(command[0]).name or command[0]
    return Plan(tool, list(command), mode)


PIP_COMPILE_EMIT_WHY = (
    "pip-compile writes the index URL into its output by default, and under crane that is "
    "the one-run proxy's address; add --no-emit-index-url"
)


def _refuse_emitted_index(
    command: Sequence[str],
    environ: Mapping[str, str],
    *,
    cwd: Path,
    home: Path,
    read_text: ReadText,
) -> None:
    """A compile command that would write the door's one-run URL, secret path and all,
    into the requirements file it writes: pip-tools' `pip-compile` (7.x,
    `writer.write_index_options`: every index but pip's default, unless the last of
    `--emit-index-url` / `--no-emit-index-url` is the latter), and `uv pip compile` with
    `--emit-index-url` / `--emit-index-annotation` on its command line or in its settings.
    A compile a script starts is out of sight."""
    words = list(command)
    name = Path(words[0]).name
    as_module = words[1:3] == ["-m", "piptools"] or words[1:2] == ["-mpiptools"]
    if name == "pip-compile" or ("python" in name and as_module):
        flags = [w for w in words if w in ("--emit-index-url", "--no-emit-index-url")]
        if flags[-1:] != ["--no-emit-index-url"]:
            what = "pip-compile without --no-emit-index-url"
            raise Rejection("command line", what, PIP_COMPILE_EMIT_WHY).error()
    uv_line = read_uv_command_line(words[1:]) if name == "uv" else None
    if uv_line is None or uv_line.command != "compile":
        return
    for option in ("--emit-index-url", "--emit-index-annotation"):
        if uv_line.has(option):
            raise Rejection("command line", option, EMIT_WHY).error()
    files = uv_config_files(
        environ,
        cwd=cwd,
        home=home,
        config_file=uv_line.last("--config-file"),
        no_config=uv_line.has("--no-config") or uv_line.has("--isolated"),
        project=uv_line.last("--project"),
        read_text=read_text,
    )
    emitted = [r for r in config_refusals(files) if r.why == EMIT_WHY]
    if emitted:
        raise emitted[0].error()


def public_index_for(index: PrivateIndex, environ: Mapping[str, str], registry: Registry) -> str:
    """Where projects the private index lacks come from, for `crane run` and `crane serve`."""
    if index.public_index:
        return index.public_index
    for name in _PUBLIC_VARIABLES:
        value = environ.get(name)
        if value and name.startswith("UV_"):
            value = split_index_value(value)[1]  # uv's `name=url`
        if value and registry.find(value) is None:
            try:
                return normalise_url(value)
            except UsageError:
                continue  # a local directory cannot be the public index
    return builtin_public_index()


def _the_index(index_url: str | None, registry: Registry) -> PrivateIndex:
    known = list(registry)
    if index_url is not None:
        found = registry.find(index_url)
        if found is None:
            try:
                spelled = normalise_url(index_url)
            except UsageError:
                spelled = index_url
            raise UnknownIndexError(index_url, closest(spelled, [i.url for i in known]))
        return found
    described = next((index for index in known if index.from_environment), None)
    if described is not None:
        return described
    if len(known) == 1:
        return known[0]
    if not known:
        raise ConfigError(
            "no private index is registered: register one with `crane index register URL ...`"
        )
    listed = ", ".join(index.url for index in known)
    raise UsageError(
        f"several indexes are registered ({listed}); name one: crane run -i URL -- ..."
    )


def _local_find_links(
    settings: PipSettings, environ: Mapping[str, str], cwd: Path
) -> tuple[Path, ...]:
    """The local find-links locations pip's settings (`PIP_FIND_LINKS`, pip.conf) and
    `UV_FIND_LINKS` give every pip and uv of the run: checked like `crane pip`'s."""
    values = [v for s in settings.highest_first() if s.key == "find-links" for v in s.value.split()]
    values += environ.get("UV_FIND_LINKS", "").replace(",", " ").split()
    paths = (local_location(value, cwd) for value in values)
    return tuple(path for path in paths if path is not None)


def _all_registered(environ: Mapping[str, str], registry: Registry) -> bool:
    """`UV_INDEX` names registered indexes only: uv searches them first, through the guard."""
    values = environ.get("UV_INDEX", "").split()
    return all(registry.find(split_index_value(value)[1]) is not None for value in values)


def _environment_refusals(environ: Mapping[str, str], registry: Registry) -> list[Rejection]:
    """uv's extra-index variables (`UV_INDEX` naming registered indexes only is fine)."""
    return [
        rejection
        for rejection in environment_refusals(environ)
        if not (rejection.setting == "index" and _all_registered(environ, registry))
    ]
