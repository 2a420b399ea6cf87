"""The `crane` command: parse, call, print. No decisions are made here.

Exit codes (see `errors.py`): 0 success; the child's code for pip/uv/poetry runs;
1 unexpected failure; 2 usage; 3 configuration; 4 authentication; 5 upstream;
128+n when stopped by signal n.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from crane_launch import __version__
from crane_launch.config import Registry
from crane_launch.errors import EXIT_FAILURE, EXIT_USAGE, CraneError

__all__ = ["main"]

_TOOL_ARGS: dict[str, Any] = {"ignore_unknown_options": True, "allow_interspersed_args": False}
# click >= 8.2 raises this for a bare `crane`; its message is the help text, shown as is.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Redacting(logging.Filter):
    """Belt and braces: no log record may carry something that looks like a bearer token."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer " in message:
            record.msg = message.split("Bearer ")[0] + "Bearer [redacted]"
            record.args = ()
        return True


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("crane: %(message)s"))
    handler.addFilter(_Redacting())
    root = logging.getLogger("crane")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False


class Context:
    def __init__(self, no_input: bool) -> None:
        self.no_input = no_input


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="crane")
@click.option("-v", "--verbose", count=True, help="Debug logs on stderr (tokens redacted).")
@click.option(
    "--no-input",
    is_flag=True,
    envvar="CRANE_NO_INPUT",
    help="Never wait for a login: fail at once when one is needed.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: int, no_input: bool) -> None:
    """Run pip, uv and poetry against private indexes behind OAuth 2.0.

    Register an index once, then prefix the tool: `crane pip install -i URL pkg`.
    """
    _setup_logging(verbose)
    ctx.obj = Context(no_input=no_input)


# -- index --------------------------------------------------------------------------------


@cli.group()
def index() -> None:
    """Register, list and remove private indexes."""


@index.command("register")
@click.argument("url")
@click.argument("endpoints", nargs=-1, metavar="[CLIENT_ID TOKEN_URL DEVICE_URL]")
@click.option("--client-id", help="The OAuth client id registered for crane.")
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
    from crane_launch.launch import manage

    registry = Registry.load()
    scopes = manage.split_scopes(options.pop("scopes"))
    request = manage.Registration(url=url, positional=endpoints, scopes=scopes, **options)
    entry, existed = manage.register(registry, request)
    registry.save()
    _say(f"{'updated' if existed else 'registered'} {entry.url}")


@index.command("list")
def index_list() -> None:
    """The registered indexes and whether you are logged in to each."""
    from crane_launch.launch import manage

    lines = manage.index_lines(Registry.load())
    if not lines:
        _say("no index registered; add one with `crane index register URL ...`")
        return
    for line in lines:
        click.echo(f"{line.url}\t{'logged in' if line.logged_in else 'not logged in'}")


@index.command("remove")
@click.argument("url")
def index_remove(url: str) -> None:
    """Forget URL and its stored tokens."""
    from crane_launch.launch import manage

    registry = Registry.load()
    removed = manage.remove(registry, url)
    registry.save()
    _say(f"removed {removed.url}")


# -- auth ---------------------------------------------------------------------------------


@cli.command()
@click.argument("url")
@click.option("--no-browser", is_flag=True, help="Print the URL and code; do not open a browser.")
@click.pass_obj
def login(obj: Context, url: str, no_browser: bool) -> None:
    """Log in to URL now with the OAuth device flow."""
    from crane_launch.launch import manage

    entry = Registry.load().get(url)
    manage.login(entry, open_browser=not no_browser, environ=os.environ, no_input=obj.no_input)
    _say(f"logged in to {entry.url}")


@cli.command()
@click.argument("url")
def logout(url: str) -> None:
    """Remove the tokens for URL (and revoke them where the provider allows)."""
    from crane_launch.launch import manage

    entry = Registry.load().get(url)
    removed, revoked = manage.logout(entry)
    if not removed:
        _say(f"not logged in to {entry.url}")
        return
    _say(f"logged out of {entry.url}" + (" (tokens revoked)" if revoked else ""))


@cli.command()
def status() -> None:
    """Per index: logged in or not, and when the tokens expire."""
    from crane_launch.launch import manage

    lines = manage.index_lines(Registry.load())
    if not lines:
        _say("no index registered; add one with `crane index register URL ...`")
        return
    for line in lines:
        click.echo(line.url)
        click.echo(f"  logged in:             {'yes' if line.logged_in else 'no'}")
        if line.logged_in:
            click.echo(f"  access token expires:  {line.access_expires}")
            click.echo(f"  refresh token expires: {line.refresh_expires}")


# -- tools --------------------------------------------------------------------------------


_TOOLS = {
    "pip": "Run pip with registered indexes behind crane's index proxy.\n\n"
    "`crane pip --python PY ...` runs `PY -m pip ...`.",
    "uv": "Run uv: `uv pip ...` through crane's index proxy, project commands (sync, lock, "
    "run, add, ...) through its transparent proxy.",
    "poetry": "Run poetry; its private sources are reached through crane's transparent proxy.",
}


def _tool_command(name: str, help_text: str) -> None:
    """`crane <tool> ARGS...`: ARGS go to the tool untouched (its own --help included)."""

    @cli.command(name, context_settings=_TOOL_ARGS, add_help_option=False, help=help_text)
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_obj
    def command(obj: Context, args: tuple[str, ...]) -> None:
        from crane_launch.launch import tools

        run: Callable[..., int] = getattr(tools, name)
        _exit(run(list(args), no_input=obj.no_input))


for _name, _help in _TOOLS.items():
    _tool_command(_name, _help)


@cli.command()
@click.argument("url")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port on 127.0.0.1 (default: any free one).",
)
@click.pass_obj
def serve(obj: Context, url: str, port: int) -> None:
    """Serve URL's private-first index on 127.0.0.1 until stopped."""
    from crane_launch.launch import tools

    _exit(tools.serve(url, port=port, no_input=obj.no_input))


def _say(message: str) -> None:
    click.echo(f"crane: {message}", err=True)


def _one_line(exc: click.ClickException) -> str:
    message = " ".join(exc.format_message().split())
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        message += f" (see `{exc.ctx.command_path} --help`)"
    return message


def _exit(code: int) -> NoReturn:
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: every crane error becomes one `crane: ...` line and its exit code."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="crane", standalone_mode=False
        )
    except CraneError as exc:
        _say(str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        _say("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        if isinstance(exc, _NO_ARGS_IS_HELP):
            exc.show()
        else:
            _say(_one_line(exc))
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug or an unforeseen environment: still one line
        logging.getLogger("crane").debug("unexpected error", exc_info=True)
        _say(f"unexpected error: {type(exc).__name__}: {exc} (run with -v for details)")
        sys.exit(EXIT_FAILURE)
    sys.exit(0)
