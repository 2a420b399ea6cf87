"""Carry out a `Plan`: log in if needed, open the doors, run the child, tear down.

Order matters and is the same for every tool: credentials first (a login that nobody
can answer fails before anything starts), then the doors and the credential probe of
every private index (a broken index fails before the child runs), then, for project
commands, the lock files are verified, then the child runs under supervision, and in
`finally` the requirements-file copies, the CA bundle and the doors go, after the child.

Every run with a registered index in play gets the guard (design section 10): one
loopback server per run carries the index door (origin-form requests under its secret
path) and the transparent door (CONNECT and absolute-form requests, with its proxy
password), on one event loop, so the guard asks the private index through the same
client and cache as the index door. The child gets the transparent door as every proxy
and the run's CA in every trust variable; a request the guard refused makes the run
exit 3 whatever the child's own code. `crane serve` opens the index door alone
(`doors.open_index_door`): it has no child to guard.

The doors live in `launch.doors`, imported only when a plan needs them: a tool run
unchanged starts without the proxy, httpx or the authentication code.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from crane_launch.console import say
from crane_launch.errors import ConfigError, CraneError
from crane_launch.launch.plan import ALWAYS_HIDDEN, IndexDoorMode, Plan, Unchanged
from crane_launch.launch.supervise import run_supervised

if TYPE_CHECKING:
    from crane_launch.launch.report import Report

__all__ = ["PASS_THROUGH_VAR", "PUBLIC_CHECK_VAR", "pass_through_hosts", "resolve_command", "run"]

PASS_THROUGH_VAR = "CRANE_PASS_THROUGH"  # noqa: S105 - a variable's name, not a secret
"""Hosts (comma-separated) the guard tunnels blind: for a host whose certificate the child
pins. The guard sees nothing of what the child fetches there."""

PUBLIC_CHECK_VAR = "CRANE_PUBLIC_CHECK"
"""`0`: a run does not ask the public index whether it has the run's private projects
(the provenance line then names none "on both"; the report says null). The names of
private projects then never leave for the public index."""


def run(
    plan: Plan,
    environ: Mapping[str, str],
    *,
    no_input: bool,
    no_cache: bool = False,
    report: Report | None = None,
) -> int:
    """Run `plan` to the end and return the child's exit code (128 + n for signal n).

    Once the child has run with the doors open, one line says where its projects came
    from; `report` (`crane --report FILE`) gets the whole record as JSON."""
    command = resolve_command(plan.command, environ)
    for note in plan.notes:
        say(note)
    mode = plan.mode
    hidden = plan.hidden | ALWAYS_HIDDEN
    child_environ = {name: value for name, value in environ.items() if name not in hidden}
    if isinstance(mode, Unchanged):
        code = run_supervised(command, child_environ)
        if report is not None:  # no index in play: a record that says so
            from crane_launch.proxy.provenance import Ledger

            report.write(
                Ledger(),
                command=plan.command,
                tool=plan.tool,
                guarded=False,
                outcome=code,
                child=code,
                error=None,
                indexes=[],
            )
        return code
    from crane_launch.launch import doors  # the proxy, httpx and auth: only from here on

    privates = (mode.private,) if isinstance(mode, IndexDoorMode) else mode.privates
    indexes = [
        (index, doors.credentials_for(index, environ, no_input=no_input)) for index in privates
    ]
    environ = child_environ  # the secrets are read: from here on, only the child's view
    public_url = mode.public_url
    check_public = environ.get(PUBLIC_CHECK_VAR, "1").strip() != "0"
    pass_through = pass_through_hosts(environ)
    if pass_through:
        say(f"guard: tunnelling {', '.join(sorted(pass_through))} blind ({PASS_THROUGH_VAR})")
    cache = None if no_cache else doors.file_cache(environ)
    with doors.GuardedDoors(
        indexes, public_url, pass_through=pass_through, cache=cache, check_public=check_public
    ) as opened:
        child: int | None = None
        outcome: int | None = None
        error: CraneError | None = None
        try:
            opened.verify_references(mode.direct_references)
            opened.verify_find_links(mode.find_links)
            if isinstance(mode, IndexDoorMode):
                opened.verify_lock_files(mode.lock_files)
                child = doors.through_index_door(command, mode, environ, opened)
            else:
                opened.verify_locks(mode.project_dir)
                child = run_supervised(command, opened.environment(environ))
                # A lock the tool has just written (and maybe installed from) is judged
                # too: the run fails rather than leave a lock that takes a private project
                # elsewhere.
                opened.verify_locks(mode.project_dir)
            if cache is not None:
                cache.save_stats()
            outcome = opened.verdict(child)
            return outcome
        except CraneError as exc:
            error = exc
            raise
        finally:
            doors.account(plan, opened, report, child=child, outcome=outcome, error=error)


def pass_through_hosts(environ: Mapping[str, str]) -> frozenset[str]:
    """The hosts the guard tunnels blind this run (`CRANE_PASS_THROUGH`, comma-separated)."""
    hosts = frozenset(h.strip().lower() for h in environ.get(PASS_THROUGH_VAR, "").split(","))
    return hosts - {""}


def resolve_command(command: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The tool the user would get by typing its name: a PATH lookup, never crane's own."""
    first = command[0]
    if os.sep in first:
        return list(command)
    found = shutil.which(first, path=environ.get("PATH", os.defpath))
    if found is None:
        raise ConfigError(f"{first} was not found on PATH; install it or activate its environment")
    return [found, *command[1:]]
