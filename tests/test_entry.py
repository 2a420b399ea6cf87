"""The console script's entry: version queries become the tool itself, secrets hidden;
everything else, and every doubt, goes to the full command line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from crane_launch import entry, environ

TOOL = """#!/bin/sh
env > "$(dirname "$0")/seen-env"
echo "$0 $*" > "$(dirname "$0")/seen-argv"
grep SigIgn /proc/$$/status > "$(dirname "$0")/seen-signals" 2>/dev/null
ls /proc/$$/fd > "$(dirname "$0")/seen-fds" 2>/dev/null
exit 7
"""


@pytest.fixture
def fake_tools(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("pip", "uv", "poetry"):
        script = bin_dir / name
        script.write_text(TOOL)
        script.chmod(0o755)
    return bin_dir


def run_crane(
    args: list[str], tmp_path: Path, bin_dir: Path, pass_fds: tuple[int, ...] = (), **extra: str
) -> int:
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "CRANE_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-m", "crane_launch", *args],
        check=False,
        env=env,
        pass_fds=pass_fds,
        capture_output=True,
        timeout=60,
    )
    return done.returncode


def register(tmp_path: Path, **fields: str) -> None:
    config = tmp_path / "home" / "config"
    config.mkdir(parents=True)
    index = {"url": "https://private.example/simple/", "auth": "token", **fields}
    (config / "indexes.json").write_text(json.dumps({"version": 1, "indexes": [index]}))


@pytest.mark.parametrize("args", [["pip", "--version"], ["uv", "-V"], ["poetry", "--version"]])
def test_a_version_query_runs_the_tool_without_any_secret(
    args: list[str], tmp_path: Path, fake_tools: Path
) -> None:
    register(tmp_path, token_env="MY_INDEX_TOKEN")
    code = run_crane(
        args,
        tmp_path,
        fake_tools,
        MY_INDEX_TOKEN="s3cret-named",
        CRANE_TOKEN="s3cret-env",
        KEPT="yes",
    )
    assert code == 7  # the tool's own status
    seen = (fake_tools / "seen-env").read_text()
    assert "s3cret" not in seen
    assert "KEPT=yes" in seen
    assert (fake_tools / "seen-argv").read_text().split() == [str(fake_tools / args[0]), args[1]]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_tool_gets_default_signals_and_no_inherited_descriptor(
    tmp_path: Path, fake_tools: Path
) -> None:
    with (tmp_path / "held").open("w") as held:
        os.dup2(held.fileno(), 77)
        try:
            assert run_crane(["pip", "--version"], tmp_path, fake_tools, pass_fds=(77,)) == 7
        finally:
            os.close(77)
    ignored = int((fake_tools / "seen-signals").read_text().split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), signum
    assert "77" not in (fake_tools / "seen-fds").read_text().split()


def test_a_corrupt_registry_is_reported_not_bypassed(tmp_path: Path, fake_tools: Path) -> None:
    config = tmp_path / "home" / "config"
    config.mkdir(parents=True)
    (config / "indexes.json").write_text("{not json")
    code = run_crane(["pip", "--version"], tmp_path, fake_tools)
    assert code == 3
    assert not (fake_tools / "seen-env").exists()


@pytest.mark.parametrize(
    "args", [["pip", "--version", "x"], ["-v", "pip", "--version"], ["uv", "version"]]
)
def test_other_commands_take_the_full_path(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _assert_full_path(["crane", *args], monkeypatch)


def _assert_full_path(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`entry.main` with `argv` goes to click's `cli.main`, never exec'ing the tool."""
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("exec'd"))
    called: list[bool] = []

    def cli_main() -> None:
        called.append(True)
        raise SystemExit(0)

    monkeypatch.setattr("crane_launch.cli.main", cli_main)
    with pytest.raises(SystemExit):
        entry.main()
    assert called == [True]


def test_a_tool_missing_from_path_takes_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("exec'd"))
    entry._exec_tool(["pip", "--version"], {"PATH": "/nonexistent-dir"})


def test_which_agrees_with_shutil(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pip").write_text("not executable")
    as_dir = tmp_path / "as-dir"
    (as_dir / "pip").mkdir(parents=True)
    good = tmp_path / "good"
    good.mkdir()
    (good / "pip").write_text("#!/bin/sh\n")
    (good / "pip").chmod(0o755)
    paths = [
        os.pathsep.join([str(plain), str(as_dir), str(good)]),
        os.pathsep.join([str(good), str(good)]),
        os.pathsep.join([str(plain), str(as_dir)]),
        "",
        os.pathsep.join(["", str(good)]),
    ]
    for path in paths:
        assert entry._which("pip", path) == shutil.which("pip", path=path), path


def test_which_finds_nothing_on_an_empty_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pip").write_text("#!/bin/sh\n")
    (tmp_path / "pip").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert shutil.which("pip", path="") is None
    assert entry._which("pip", "") is None
    assert entry._which("pip", os.pathsep.join(["", "/nonexistent"])) == shutil.which(
        "pip", path=os.pathsep.join(["", "/nonexistent"])
    )


@pytest.mark.parametrize("xdg", [None, "", "   ", "/somewhere/config", "rel/cfg", "./"])
@pytest.mark.parametrize("home", [None, "", "/home/someone", "/home/someone/", "relative", "/"])
def test_the_config_dir_is_platformdirs_own(
    xdg: str | None, home: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRANE_HOME", raising=False)
    for name, value in (("XDG_CONFIG_HOME", xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    try:
        expected = Path(platformdirs.user_config_dir("crane", appauthor=False))
    except RuntimeError:  # platformdirs finds no home at all: neither may crane
        with pytest.raises(RuntimeError):
            environ.config_dir()
        return
    assert environ.config_dir() == expected


def test_android_is_left_to_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("ANDROID_DATA", "/data")
    assert environ._plain_xdg_config_home() is None


def test_crane_version_is_clicks_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from crane_launch import cli

    expected = CliRunner().invoke(cli.cli, ["--version"]).output
    monkeypatch.setattr(sys, "argv", ["crane", "--version"])
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == 0
    assert capsys.readouterr().out == expected


def test_a_report_asked_for_by_the_environment_takes_the_full_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRANE_REPORT", "r.json")
    _assert_full_path(["crane", "pip", "--version"], monkeypatch)
