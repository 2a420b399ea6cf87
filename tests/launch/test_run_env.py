"""What the child tool is given: its environment, and which executable runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil
import pytest

from crane_launch.config import PrivateIndex
from crane_launch.errors import ConfigError
from crane_launch.launch.environment import (
    GUARD_PROXY_VARS,
    GUARD_TRUST_VARS,
    guarded_environment,
    index_door_environment,
    no_proxy_covers,
)
from crane_launch.launch.plan import IndexDoorMode, Plan, Unchanged
from crane_launch.launch.run import resolve_command, run

DOOR = "http://127.0.0.1:40123/one-time-secret/simple/"
PROXY = "http://127.0.0.1:40124"
BUNDLE = "/tmp/crane-x/ca-bundle.pem"
PRIVATE = PrivateIndex(
    url="https://pkgs.example.test/simple/",
    client_id="crane",
    token_url="https://idp.example.test/token",
    device_url="https://idp.example.test/device",
)


def mode(index_env_var: str = "PIP_INDEX_URL") -> IndexDoorMode:
    return IndexDoorMode(
        private=PRIVATE,
        public_url="https://public.example.test/simple/",
        index_env_var=index_env_var,
        env_set={"PIP_NO_INPUT": "1"},
        env_unset=frozenset({"PIP_EXTRA_INDEX_URL", "PIP_INDEX"}),
    )


# -- index_door_environment ---------------------------------------------------------------


def test_the_index_reaches_the_child_through_its_environment() -> None:
    parent = {
        "PATH": "/usr/bin",
        "PIP_INDEX_URL": "https://pkgs.example.test/simple/",
        "PIP_EXTRA_INDEX_URL": "https://elsewhere.test/simple/",
        "PIP_INDEX": "https://pkgs.example.test/simple/",
    }

    env = index_door_environment(parent, mode(), DOOR)

    assert env["PIP_INDEX_URL"] == DOOR
    assert "PIP_EXTRA_INDEX_URL" not in env
    assert "PIP_INDEX" not in env
    assert env["PIP_NO_INPUT"] == "1"
    assert env["PATH"] == "/usr/bin"
    assert parent["PIP_INDEX_URL"] == "https://pkgs.example.test/simple/"  # not modified


def test_uv_gets_its_own_variable() -> None:
    env = index_door_environment({}, mode("UV_DEFAULT_INDEX"), DOOR)
    assert env["UV_DEFAULT_INDEX"] == DOOR
    assert "PIP_INDEX_URL" not in env


def test_a_run_without_an_index_leaves_the_environment_alone(tmp_path: Path) -> None:
    parent = {
        "PATH": os.environ.get("PATH", os.defpath),
        "NO_PROXY": "localhost",
        "PIP_INDEX_URL": "https://public.example.test/simple/",
    }
    seen = tmp_path / "env.json"
    child = f"import json, os; open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))"
    plan = Plan("python", [sys.executable, "-c", child], Unchanged())
    assert run(plan, parent, no_input=True) == 0
    shown = json.loads(seen.read_text())
    shown.pop("LC_CTYPE", None)  # Python's locale coercion may add it to its own process
    assert shown == parent


# -- guarded_environment ------------------------------------------------------------------


def test_the_guard_is_every_proxy_and_its_ca_is_every_trust() -> None:
    parent = {
        "PATH": "/usr/bin",
        "HTTPS_PROXY": "http://corp-proxy.test:3128",
        "http_proxy": "http://corp-proxy.test:3128",
        "ALL_PROXY": "socks5://corp-proxy.test:1080",
        "SSL_CERT_FILE": "/etc/ssl/corp.pem",
        "GIT_SSL_CAINFO": "/etc/ssl/git.pem",
    }

    env = guarded_environment(parent, PROXY, BUNDLE, ["pkgs.example.test"])

    for name in GUARD_PROXY_VARS:
        assert env[name] == PROXY, name
    for name in GUARD_TRUST_VARS:
        assert env[name] == BUNDLE, name
    assert set(GUARD_PROXY_VARS) >= {"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"}
    assert set(GUARD_TRUST_VARS) >= {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"}
    assert env["PATH"] == "/usr/bin"
    assert parent["HTTPS_PROXY"] == "http://corp-proxy.test:3128"  # not modified


@pytest.mark.parametrize(
    "before",
    [None, "", "localhost", "*", ".corp.test,other.test", "pkgs.example.test", "0.0.0.0/0"],
)
def test_only_loopback_skips_the_guard(before: str | None) -> None:
    # The user's NO_PROXY would let the child skip the guard; only the index door's
    # loopback address is reached directly.
    parent = {} if before is None else {"NO_PROXY": before, "no_proxy": before}
    env = guarded_environment(parent, PROXY, BUNDLE, ["pkgs.example.test"])
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.1,::1"


def test_a_private_host_on_loopback_is_not_skipped() -> None:
    env = guarded_environment({}, PROXY, BUNDLE, ["127.0.0.1"])
    assert env["NO_PROXY"] == "::1"


def test_the_index_door_setting_comes_on_top_of_the_guard() -> None:
    guarded = guarded_environment({"PIP_INDEX": "x"}, PROXY, BUNDLE, ["pkgs.example.test"])
    env = index_door_environment(guarded, mode(), DOOR)
    assert env["PIP_INDEX_URL"] == DOOR
    assert env["HTTPS_PROXY"] == PROXY
    assert env["NO_PROXY"] == "127.0.0.1,::1"
    assert "PIP_INDEX" not in env


# -- resolve_command ----------------------------------------------------------------------


def tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_the_tool_is_found_on_the_path_crane_is_given(tmp_path: Path) -> None:
    first = tool(tmp_path / "first", "pip")
    tool(tmp_path / "second", "pip")
    environ = {"PATH": os.pathsep.join([str(tmp_path / "empty"), str(first.parent)])}
    environ["PATH"] += os.pathsep + str(tmp_path / "second")

    assert resolve_command(["pip", "install", "-r", "req.txt"], environ) == [
        str(first),
        "install",
        "-r",
        "req.txt",
    ]


def test_python_is_the_users_python_not_cranes(tmp_path: Path) -> None:
    users = tool(tmp_path / "venv" / "bin", Path(sys.executable).name)
    command = resolve_command([Path(sys.executable).name, "-m", "pip"], {"PATH": str(users.parent)})
    assert command == [str(users), "-m", "pip"]
    assert command[0] != sys.executable


def test_a_path_is_used_as_given(tmp_path: Path) -> None:
    command = [str(tmp_path / "bin" / "python"), "-m", "pip"]
    assert resolve_command(command, {"PATH": ""}) == command


def test_a_file_that_is_not_executable_is_not_the_tool(tmp_path: Path) -> None:
    (tmp_path / "uv").write_text("not a program")
    with pytest.raises(ConfigError, match="uv was not found on PATH"):
        resolve_command(["uv", "sync"], {"PATH": str(tmp_path)})


def test_a_missing_tool_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_command(["poetry", "install"], {"PATH": str(tmp_path)})
    assert str(caught.value) == (
        "poetry was not found on PATH; install it or activate its environment"
    )
    assert caught.value.exit_code == 3


@pytest.mark.parametrize(
    ("entry", "host", "covers"),
    [
        ("*", "index.example.test", True),
        ("index.example.test", "index.example.test", True),
        ("INDEX.example.test", "index.example.test", True),
        (".example.test", "index.example.test", True),
        ("example.test", "index.example.test", True),
        ("*.example.test", "index.example.test", True),
        ("index.example.test:443", "index.example.test", True),
        (" index.example.test ", "index.example.test", True),
        ("other.example.test", "index.example.test", False),
        ("ample.test", "index.example.test", False),
        ("127.0.0.0/8", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.1", True),
        ("10.0.0.0/8", "127.0.0.1", False),
        ("[::1]", "::1", True),
        ("::1", "::1", True),
        ("localhost", "127.0.0.1", False),
        ("", "index.example.test", False),
    ],
)
def test_no_proxy_entries_that_would_bypass_a_private_host(
    entry: str, host: str, covers: bool
) -> None:
    assert no_proxy_covers(entry, host) is covers


def test_a_domain_suffix_in_no_proxy_does_not_let_the_child_skip_crane() -> None:
    env = guarded_environment(
        {"NO_PROXY": ".example.test,other.example,127.0.0.0/8"},
        "http://crane:pw@127.0.0.1:1",
        "/b.pem",
        ["index.example.test"],
    )
    assert env["NO_PROXY"] == "127.0.0.1,::1"


def test_a_lock_file_written_through_the_door_gets_the_real_urls(tmp_path: Path) -> None:
    from crane_launch.launch.doors import restore_real_urls

    door = "http://127.0.0.1:4000/T0KEN/simple/"
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        'index = "http://127.0.0.1:4000/T0KEN/simple/"\n'
        'url = "http://127.0.0.1:4000/T0KEN/files/repo/pkg/a-1.0.tar.gz"\n'
        'url = "http://127.0.0.1:5000/packages/public-1.0-py3-none-any.whl"\n'
    )
    lock.chmod(0o644)
    restore_real_urls(lock, door, "https://private.example/repo/simple/")
    assert lock.read_text() == (
        'index = "https://private.example/repo/simple/"\n'
        'url = "https://private.example/repo/pkg/a-1.0.tar.gz"\n'
        'url = "http://127.0.0.1:5000/packages/public-1.0-py3-none-any.whl"\n'
    )
    assert lock.stat().st_mode & 0o777 == 0o644
    restore_real_urls(tmp_path / "absent.toml", door, "https://private.example/simple/")


def test_a_uv_tool_receipt_gets_the_real_url_and_no_repeated_entry(tmp_path: Path) -> None:
    """uv puts the run's default index first in the receipt (`UV_DEFAULT_INDEX`, the door,
    uv 0.13.9): after `crane uv tool upgrade` the receipt names the private index once,
    however often it was upgraded, and the door's URL without a slash is mapped too."""
    from crane_launch.launch.doors import restore_real_urls

    door = "http://127.0.0.1:4000/T0KEN/simple/"
    private = "https://private.example/simple/"
    entry = '{ url = "%s", explicit = false, default = true, format = "simple" }'
    receipt = tmp_path / "uv-receipt.toml"
    receipt.write_text(
        '[tool]\nrequirements = [{ name = "corp-cli" }]\n\n[tool.options]\nindex = ['
        + ", ".join([entry % door, entry % private, entry % private.rstrip("/")])
        + "]\n"
    )
    restore_real_urls(receipt, door, private, collapse_repeats=True)
    text = receipt.read_text()
    assert "T0KEN" not in text
    assert text.count(private) == 1
    assert text.count(private.rstrip("/") + '"') == 1  # a different spelling is kept
    plain = tmp_path / "plain.toml"
    plain.write_text("index = [" + ", ".join([entry % door, entry % private]) + "]\n")
    restore_real_urls(plain, door, private)
    assert plain.read_text().count(private) == 2  # only receipts are collapsed
    bare = tmp_path / "bare.toml"
    bare.write_text('index-url = "http://127.0.0.1:4000/T0KEN/simple"\n')
    restore_real_urls(bare, door, private)
    assert bare.read_text() == 'index-url = "https://private.example/simple"\n'


def test_the_doors_entries_are_taken_out_of_a_receipt_that_named_no_private_index(
    tmp_path: Path,
) -> None:
    from crane_launch.launch.doors import remove_door_entries

    door = "http://127.0.0.1:4000/T0KEN/simple/"
    public = '{ url = "https://pub.example/simple/", default = true }'
    receipt = tmp_path / "uv-receipt.toml"
    receipt.write_text(
        '[tool.options]\nindex = [{ url = "http://127.0.0.1:4000/T0KEN/simple/", '
        f"default = true }}, {public}]\n"
        'index-url = "http://127.0.0.1:4000/T0KEN/simple"\n'
    )
    remove_door_entries(receipt, door)
    assert receipt.read_text() == f"[tool.options]\nindex = [{public}]\n"
    alone = tmp_path / "alone.toml"
    alone.write_text(f'index = [{{ url = "{door}", default = true }}]\n')
    remove_door_entries(alone, door)
    assert alone.read_text() == "index = []\n"


def test_files_left_by_a_killed_crane_are_removed_by_the_next_run(tmp_path: Path) -> None:
    from crane_launch.launch.doors import _sweep_stale

    gone = psutil.Popen(["true"])
    gone.wait()
    alive = os.getpid()
    (tmp_path / f"crane-run-{gone.pid}-abc").mkdir()
    (tmp_path / f"crane-run-{gone.pid}-abc" / "ca-bundle.pem").write_text("x")
    (tmp_path / f"crane-run-{alive}-def").mkdir()
    (tmp_path / f".crane-{gone.pid}-1a2b-requirements.txt").write_text("x")
    (tmp_path / f".crane-{alive}-1a2b-requirements.txt").write_text("x")
    (tmp_path / ".crane-fixedtoken-requirements.txt").write_text("x")

    _sweep_stale(tmp_path, "crane-run-")
    _sweep_stale(tmp_path, ".crane-")

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            f"crane-run-{alive}-def",
            f".crane-{alive}-1a2b-requirements.txt",
            ".crane-fixedtoken-requirements.txt",
        ]
    )


def test_pipx_metadata_the_run_wrote_records_the_private_index(tmp_path: Path) -> None:
    import json
    import os

    from crane_launch.launch.doors import _metadata_times, record_pipx_index
    from crane_launch.launch.plan import PipxRecord

    private = "https://private.example/simple/"
    venvs = tmp_path / "venvs"
    for name in ("touched", "untouched", "named"):
        (venvs / name).mkdir(parents=True)
    untouched = venvs / "untouched" / "pipx_metadata.json"
    untouched.write_text(json.dumps({"main_package": {"pip_args": []}}))
    named = venvs / "named" / "pipx_metadata.json"
    named.write_text(json.dumps({"main_package": {"pip_args": ["--index-url=https://x/"]}}))
    before = _metadata_times(venvs)
    touched = venvs / "touched" / "pipx_metadata.json"
    touched.write_text(
        json.dumps(
            {
                "main_package": {"pip_args": ["--no-cache-dir"]},
                "injected_packages": {"extra": {"pip_args": ["-ihttps://y/"]}},
            }
        )
    )
    named.write_text(named.read_text())  # rewritten by the run, with an index of its own
    os.utime(named, ns=(before[named] + 10**9, before[named] + 10**9))
    record_pipx_index(PipxRecord(venvs, only=frozenset({"named"})), before, private)
    assert json.loads(touched.read_text())["main_package"]["pip_args"] == ["--no-cache-dir"]
    record_pipx_index(PipxRecord(venvs, main_package=False), before, private)
    assert json.loads(touched.read_text())["main_package"]["pip_args"] == ["--no-cache-dir"]
    record_pipx_index(PipxRecord(venvs), before, private)
    data = json.loads(touched.read_text())
    assert data["main_package"]["pip_args"] == ["--no-cache-dir", "--index-url", private]
    assert data["injected_packages"]["extra"]["pip_args"] == ["-ihttps://y/"]
    assert json.loads(untouched.read_text())["main_package"]["pip_args"] == []
    assert json.loads(named.read_text())["main_package"]["pip_args"] == ["--index-url=https://x/"]
