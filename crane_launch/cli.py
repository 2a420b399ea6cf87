"""The `crane` command: parse, call, print. No decisions are made here.

Exit codes (see `errors.py`): 0 success; the child's code for pip/uv/poetry runs;
1 unexpected failure; 2 usage; 3 configuration; 4 authentication; 5 upstream;
6 `crane audit` found a dependency confusion; 128+n when stopped by signal n.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from crane_launch import __version__, console
from crane_launch.config import AUTH_SCHEMES, Registry
from crane_launch.console import say
from crane_launch.errors import EXIT_FAILURE, EXIT_USAGE, CraneError
from crane_launch.errors import UsageError as CraneUsageError
from crane_launch.process import harden

__all__ = ["main"]

_REPORTED = frozenset({"pip", "uv", "uvx", "pipx", "poetry", "pdm", "run"})
"""The commands `--report FILE` (`CRANE_REPORT`) applies to."""
_TOOL_ARGS: dict[str, Any] = {"ignore_unknown_options": True, "allow_interspersed_args": False}
# click >= 8.2 raises this for a bare `crane`; its message is the help text, shown as is.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class Context:
    def __init__(self, no_input: bool, no_cache: bool = False, report: str | None = None) -> None:
        self.no_input = no_input
        self.no_cache = no_cache
        self.report = report or None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="crane")
@click.option("-v", "--verbose", count=True, help="Debug logs on stderr (tokens redacted).")
@click.option(
    "--no-input",
    is_flag=True,
    envvar="CRANE_NO_INPUT",
    help="Never wait for a login: fail at once when one is needed.",
)
@click.option(
    "--no-cache",
    is_flag=True,
    envvar="CRANE_NO_CACHE",
    help="Neither read nor write crane's cache of private files this run.",
)
@click.option(
    "--report",
    metavar="FILE",
    envvar="CRANE_REPORT",
    help="After a tool run (pip, uv, uvx, pipx, pdm, poetry, run), write where each "
    "project came from to FILE (JSON; the format is in the README).",
)
@click.pass_context
def cli(
    ctx: click.Context, verbose: int, no_input: bool, no_cache: bool, report: str | None
) -> None:
    """Run pip, uv, pipx, pdm, poetry and any other command against private indexes
    behind OAuth 2.0.

    Register an index once (crane index register URL ...), then prefix the tool. Every
    front door, with an example:

    \b
      crane pip install -i URL corp-app         pip
      crane uv pip install -i URL corp-app      uv's pip interface
      crane uv sync                             uv projects (sync, lock, add, run, ...)
      crane uv tool install -i URL corp-cli     uv tools (install, run, upgrade)
      crane uvx --index-url URL corp-cli        uvx
      crane pipx install -i URL corp-cli        pipx (install, run, upgrade, inject, ...)
      crane poetry install                      poetry projects
      crane pdm install                         pdm projects
      crane run -- tox -e py312                 any other command (tox, nox, hatch, ...)
      crane serve URL                           the index proxy alone, for other tools
    """
    console.setup(verbose)
    explicit = ctx.get_parameter_source("report") is click.core.ParameterSource.COMMANDLINE
    if report and explicit and ctx.invoked_subcommand not in _REPORTED:
        raise CraneUsageError(
            "--report is for a tool run (pip, uv, uvx, pipx, pdm, poetry, run): "
            "crane --report FILE pip ..."
        )
    ctx.obj = Context(no_input=no_input, no_cache=no_cache, report=report)


# -- index --------------------------------------------------------------------------------


@cli.group()
def index() -> None:
    """Register, list and remove private indexes."""


@index.command("register")
@click.argument("url")
@click.argument("endpoints", nargs=-1, metavar="[CLIENT_ID TOKEN_URL DEVICE_URL]")
@click.option(
    "--auth",
    type=click.Choice(AUTH_SCHEMES),
    help="How to authenticate: device (OAuth device flow, the default), client-credentials "
    "(OAuth, for CI), token (a static bearer token), basic (username and password).",
)
@click.option("--client-id", help="The OAuth client id registered for crane.")
@click.option(
    "--client-secret-env",
    metavar="VAR",
    help="The variable holding the OAuth client secret (client-credentials, or a "
    "confidential device client). Read at run time, never stored.",
)
@click.option("--issuer", help="Discover the endpoints from this OIDC / RFC 8414 issuer.")
@click.option("--token-url", help="Token endpoint (instead of discovery).")
@click.option("--device-url", help="Device authorization endpoint (instead of discovery).")
@click.option("--revocation-url", help="Revocation endpoint, used by `crane logout`.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Scopes to request (repeat or space-separate). Default: openid offline_access.",
)
@click.option("--resource", help="RFC 8707 resource indicator to request.")
@click.option("--audience", help="Audience to request (providers that use `audience`).")
@click.option("--token-env", metavar="VAR", help="--auth token: the variable holding the token.")
@click.option(
    "--token-file", metavar="PATH", help="--auth token: a file holding the token (read per run)."
)
@click.option("--username", help="--auth basic: the username.")
@click.option(
    "--password-env",
    metavar="VAR",
    help="--auth basic: the variable holding the password. Without it, crane asks once on "
    "a terminal and keeps the password in its 0600 store.",
)
@click.option(
    "--public-index",
    help="Where projects this index lacks come from. Default: the tool's own index.",
)
@click.option(
    "--probe-path",
    help="A path on the index's origin that proves the credentials "
    "(for indexes without a root page).",
)
def index_register(url: str, endpoints: tuple[str, ...], **options: Any) -> None:
    """Register URL (or update it): how crane authenticates to it."""
    from crane_launch.commands import index

    registry = Registry.load()
    scopes = index.split_scopes(options.pop("scopes"))
    request = index.Registration(url=url, positional=endpoints, scopes=scopes, **options)
    previous = registry.find(url)
    entry, existed = index.register(registry, request)
    registry.save()
    say(f"{'updated' if existed else 'registered'} {entry.url} ({index.describe(entry)})")
    if previous is not None and previous.auth != entry.auth:
        forgotten = index.forget_scheme(previous, os.environ)
        if forgotten:
            say(forgotten)


@index.command("list")
def index_list() -> None:
    """The registered indexes and whether you are logged in to each."""
    from crane_launch.commands import session

    rows = session.statuses(Registry.for_run(os.environ), os.environ)
    if not rows:
        say("no index registered; add one with `crane index register URL ...`")
        return
    for row in rows:
        click.echo(f"{row.url}\t{row.scheme}\t{row.state}")


@index.command("remove")
@click.argument("url")
def index_remove(url: str) -> None:
    """Forget URL and its stored tokens."""
    from crane_launch.commands import index

    registry = Registry.load()
    removed = index.remove(registry, url)
    registry.save()
    say(f"removed {removed.url}")


# -- cache --------------------------------------------------------------------------------


@cli.group()
def cache() -> None:
    """crane's cache of the private files its index proxy has served."""


@cache.command("dir")
def cache_dir_command() -> None:
    """Print the cache directory."""
    from crane_launch.commands import cache as cache_command

    click.echo(str(cache_command.directory()))


@cache.command("info")
def cache_info() -> None:
    """Size, entries, the size cap, and the hits of the last run."""
    from crane_launch.commands import cache as cache_command

    for line in cache_command.info(os.environ):
        click.echo(line)


@cache.command("clean")
def cache_clean() -> None:
    """Remove every cached file."""
    from crane_launch.commands import cache as cache_command

    say(cache_command.clean(os.environ))


# -- auth ---------------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("--no-browser", is_flag=True, help="Print the URL and code; do not open a browser.")
@click.pass_obj
def login(obj: Context, url: str, no_browser: bool) -> None:
    """Log in to URL now: the OAuth device flow, or the password of a Basic index."""
    from crane_launch.commands import session

    entry = Registry.for_run(os.environ).get(url)
    say(
        session.login(entry, open_browser=not no_browser, environ=os.environ, no_input=obj.no_input)
    )


@cli.command()
@click.argument("url")
def logout(url: str) -> None:
    """Remove the tokens or password stored for URL (revoking tokens where possible)."""
    from crane_launch.commands import session

    say(session.logout(Registry.for_run(os.environ).get(url), os.environ))


@cli.command()
def status() -> None:
    """Per index: its scheme, logged in or not, and when the tokens expire."""
    from crane_launch.commands import session

    rows = session.statuses(Registry.for_run(os.environ), os.environ)
    if not rows:
        say("no index registered; add one with `crane index register URL ...`")
        return
    for row in rows:
        click.echo(row.url)
        click.echo(f"  authentication:        {row.scheme_detail}")
        if row.scheme != "device":
            click.echo(f"  credentials:           {row.state}")
            continue
        click.echo(f"  logged in:             {'yes' if row.logged_in else 'no'}")
        if row.logged_in:
            click.echo(f"  access token expires:  {row.access_expires}")
            click.echo(f"  refresh token expires: {row.refresh_expires}")
    from crane_launch.launch.run import PASS_THROUGH_VAR, pass_through_hosts

    blind = pass_through_hosts(os.environ)
    if blind:
        hosts = ", ".join(sorted(blind))
        click.echo(f"guard: {hosts} tunnelled blind, unchecked ({PASS_THROUGH_VAR})")


# -- tools --------------------------------------------------------------------------------


def _tool_command(name: str, help_text: str) -> Callable[[Callable[..., int]], Any]:
    """`crane <name> ARGS...`: ARGS go to the tool untouched (its own --help included);
    the command returns the tool's exit code."""

    def decorate(function: Callable[..., int]) -> Any:
        function = click.pass_obj(function)
        function = click.argument("args", nargs=-1, type=click.UNPROCESSED)(function)
        return cli.command(
            name, context_settings=_TOOL_ARGS, add_help_option=False, help=help_text
        )(function)

    return decorate


@_tool_command(
    "pip",
    "Run pip with registered indexes behind crane's index proxy.\n\n"
    "`crane pip --python PY ...` runs `PY -m pip ...`.",
)
def pip_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.pip(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@_tool_command(
    "uv",
    "Run uv: `uv pip ...` through crane's index proxy, project commands (sync, lock, "
    "run, add, ...) through its transparent proxy.",
)
def uv_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.uv(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@_tool_command(
    "uvx",
    "Run uvx (`uv tool run`) with the registered index behind crane's index proxy: "
    "`crane uvx --index-url URL corp-cli`.",
)
def uvx_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.uvx(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@_tool_command(
    "pipx",
    "Run pipx (install, run, upgrade, inject, ...) with the registered index behind crane's "
    "index proxy: `crane pipx install --index-url URL corp-cli`.",
)
def pipx_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.pipx(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@_tool_command(
    "pdm",
    "Run pdm (install, lock, sync, add, ...); its private sources ([[tool.pdm.source]]) are "
    "reached through crane's transparent proxy.",
)
def pdm_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.pdm(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@_tool_command(
    "poetry", "Run poetry; its private sources are reached through crane's transparent proxy."
)
def poetry_command(obj: Context, args: tuple[str, ...]) -> int:
    from crane_launch.commands import tools

    return tools.poetry(list(args), no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report)


@cli.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "-i",
    "--index-url",
    "index_url",
    metavar="URL",
    help="The registered index (default: the only one registered).",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[--] COMMAND [ARGS]...")
@click.pass_obj
def run_command(obj: Context, index_url: str | None, command: tuple[str, ...]) -> int:
    """Run any command (tox, nox, hatch, pip-compile, a script) with the private index
    behind crane's proxies: PIP_INDEX_URL, UV_DEFAULT_INDEX and PDM_PYPI_URL name the
    index proxy, and every request passes crane's guard.

    Example: crane run -- tox -e py312
    """
    from crane_launch.commands import tools

    args = list(command[1:] if command[:1] == ("--",) else command)
    return tools.run_command(
        args, index_url=index_url, no_input=obj.no_input, no_cache=obj.no_cache, report=obj.report
    )


@cli.command()
@click.argument("url")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port on 127.0.0.1 (default: any free one).",
)
@click.pass_obj
def serve(obj: Context, url: str, port: int) -> int:
    """Serve URL's private-first index on 127.0.0.1 until stopped."""
    from crane_launch.commands import tools

    return tools.serve(url, port=port, no_input=obj.no_input, no_cache=obj.no_cache)


@cli.command()
@click.argument("names", nargs=-1, metavar="[PROJECT]...")
@click.option(
    "-r",
    "--requirement",
    "requirements",
    multiple=True,
    metavar="FILE",
    help="A requirements file (with the files it includes). Repeatable.",
)
@click.option(
    "--pyproject",
    "pyprojects",
    multiple=True,
    metavar="FILE",
    help="A pyproject.toml's dependencies.",
)
@click.option(
    "--lock",
    "locks",
    multiple=True,
    metavar="FILE",
    help="A lock file: uv.lock, poetry.lock or pylock.toml. Repeatable.",
)
@click.option("--python", metavar="PY", help="The distributions installed for interpreter PY.")
@click.option("--index", "index_url", metavar="URL", help="The registered index to audit against.")
@click.option(
    "--private-names",
    is_flag=True,
    help="List the private index's projects the public index does not have: the names "
    "to reserve publicly.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON on stdout instead of a table.")
@click.pass_obj
def audit(obj: Context, /, names: tuple[str, ...], **options: Any) -> int:
    """Which projects are private, public or on both, and any dependency confusion.

    Reads PROJECT names, requirements files, pyproject.toml dependencies, lock files or
    an environment (default: the pyproject.toml and lock files here). Exit 6 when a lock
    file, an environment or a pin takes a project of the private index from elsewhere;
    5 when an index could not answer.
    """
    from crane_launch.commands import audit as auditing

    index_url, as_json = options["index_url"], options["as_json"]
    inputs = auditing.Inputs(
        names=names,
        requirements=tuple(Path(path) for path in options["requirements"]),
        pyprojects=tuple(Path(path) for path in options["pyprojects"]),
        locks=tuple(Path(path) for path in options["locks"]),
        python=options["python"],
    )
    if options["private_names"]:
        if not inputs.empty:
            raise CraneUsageError("--private-names takes no other input")
        listed = auditing.run_private_names(
            index_url=index_url, environ=os.environ, no_input=obj.no_input
        )
        if as_json:
            click.echo(json.dumps(listed.as_json(), indent=2))
        else:
            for name in listed.private_only:
                click.echo(name)
        say(listed.summary())
        return listed.exit_code
    result = auditing.run_audit(
        inputs, index_url=index_url, environ=os.environ, cwd=Path.cwd(), no_input=obj.no_input
    )
    if as_json:
        click.echo(result.dumps())
    else:
        for line in result.table():
            click.echo(line)
        for row in result.confusions:
            for finding in row.findings:
                say(finding)
    say(result.summary())
    return result.exit_code


def _one_line(exc: click.ClickException) -> str:
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return message


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: every crane error becomes one `crane: ...` line and its exit code."""
    harden()
    try:
        # Outside standalone mode click returns what the command returned (a tool's exit
        # code; None for the bookkeeping commands), or the code of a `ctx.exit`.
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="crane", standalone_mode=False
        )
    except CraneError as exc:
        say(str(exc))
        sys.exit(exc.exit_code)
    except click.Abort:
        say("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        if isinstance(exc, _NO_ARGS_IS_HELP):
            exc.show()
        else:
            say(_one_line(exc))
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an unforeseen environment: still one line
        logging.getLogger(__name__).debug("unexpected error", exc_info=True)
        say(f"unexpected error: {type(exc).__name__}: {exc} (run with -v for details)")
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
