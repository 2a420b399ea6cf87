"""Provenance reports and `crane audit`, end to end: real pip, uv and poetry, the real IdP
and the real indexes, with a small company's projects:

- private index: corp-shared 1.0.0, corp-app 1.0.0 (requires corp-shared and
  public-helper), corp-internal-only 1.0.0;
- public index: corp-shared 99.0.0 (a dependency-confusion decoy), public-helper 1.0.0.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import Crane, pyproject, uv_env
from stack.wheels import build_wheel

PRIVATE = (
    ("corp-shared", "1.0.0", ()),
    ("corp-app", "1.0.0", ("corp-shared", "public-helper")),
    ("corp-internal-only", "1.0.0", ()),
)
PUBLIC = (
    ("corp-shared", "99.0.0", ()),
    ("public-helper", "1.0.0", ()),
)


@pytest.fixture(scope="session")
def corp(stack) -> dict[str, str]:
    """The company's wheels on both indexes; each file's sha256 by file name and origin."""
    digests = {}
    for directory, wheels, origin in (
        (stack.private_dir, PRIVATE, "private"),
        (stack.public_dir, PUBLIC, "public"),
    ):
        for name, version, requires in wheels:
            path = build_wheel(directory, name, version, requires, origin)
            digests[f"{origin}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


@pytest.fixture
def logged_in(stack, crane, corp):
    crane.env["CRANE_PUBLIC_CHECK"] = "1"  # the public index here is the local one
    crane.register(stack, None, "--public-index", stack.public_url)
    assert crane.login(stack).code == 0
    stack.gate.reset()
    stack.gate.clear()
    return crane


def uv_project(stack) -> str:
    """corp-service: corp-app from the private index, the public index the default."""
    return pyproject(
        ["corp-app"],
        name="corp-service",
        uv_indexes=[("private", stack.private_url, False), ("public", stack.public_url, True)],
    )


def provenance_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("crane: provenance:")]
    assert len(lines) == 1, stderr
    return lines[0]


def projects(report: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in report["projects"]}


def assert_corp_report(report: dict, corp: dict[str, str], *, private_url: str) -> None:
    """corp-app and corp-shared came from the private index, public-helper fell back to
    the public index with the private index's 404 as proof; files carry their hashes."""
    assert report["format"] == "crane-provenance"
    assert report["version"] == 1
    found = projects(report)
    assert found["corp-app"]["source"] == "private"
    assert found["corp-shared"]["source"] == "private"
    assert found["public-helper"]["source"] == "public"
    assert report["summary"]["private"] == ["corp-app", "corp-shared"]
    assert report["summary"]["public"] == ["public-helper"]
    proof = found["public-helper"]["fallback"]
    assert proof["index"] == private_url
    assert proof["status"] == 404
    assert proof["verdict"] == "absent"
    assert proof["credentials_proven"] is True
    assert "fallback" not in found["corp-shared"]
    for name, origin in (("corp-app", "private"), ("corp-shared", "private")):
        (file,) = found[name]["files"]
        assert file["source"] == origin
        assert file["sha256"] == corp[f"{origin}/{file['filename']}"], file
    (helper,) = found["public-helper"]["files"]
    assert helper["source"] == "public"
    assert helper["sha256"] == corp[f"public/{helper['filename']}"]
    assert "token" not in json.dumps(report).lower()


def test_pip_report_and_line_name_private_projects_and_the_fallback(
    stack, logged_in, corp, tmp_path
):
    report = tmp_path / "report.json"
    result = logged_in.run(
        "--report", str(report),
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "corp-app",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    line = provenance_line(result.stderr)
    assert "2 projects from the private index" in line
    assert "1 from the public index (public-helper)" in line
    assert "corp-shared is on the public index too, taken from the private one" in line
    data = json.loads(report.read_text())
    assert_corp_report(data, corp, private_url=stack.private_url)
    found = projects(data)
    assert found["corp-shared"]["also_on_public_index"] is True
    assert found["corp-app"]["also_on_public_index"] is False
    assert data["tool"] == "pip"
    assert data["command"] == "pip install"
    assert data["exit_code"] == 0
    # Only the project's own version came: 99.0.0 on the public index was never asked for.
    (shared,) = found["corp-shared"]["files"]
    assert shared["filename"] == "corp_shared-1.0.0-py3-none-any.whl"


def test_uv_pip_report_from_the_environment_variable(stack, logged_in, corp, tmp_path):
    report = tmp_path / "uv-report.json"
    env = {**uv_env(logged_in.env), "CRANE_REPORT": str(report)}
    result = logged_in.run(
        "uv", "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        "corp-app",
        env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "1 from the public index (public-helper)" in provenance_line(result.stderr)
    data = json.loads(report.read_text())
    assert_corp_report(data, corp, private_url=stack.private_url)
    assert data["command"] == "uv pip install"


def test_uv_lock_and_sync_reports(stack, logged_in, corp, tmp_path):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(uv_project(stack))
    env = uv_env(logged_in.env)
    locked = logged_in.run("--report", "lock.json", "uv", "lock", env=env, timeout=300)
    assert locked.code == 0, locked.stderr
    lock_report = json.loads((work / "lock.json").read_text())
    found = projects(lock_report)
    assert found["corp-app"]["source"] == "private"
    assert found["corp-shared"]["source"] == "private"
    assert found["public-helper"]["source"] == "public"
    assert found["public-helper"]["fallback"]["status"] == 404
    assert "2 projects from the private index" in provenance_line(locked.stderr)

    synced = logged_in.run("--report", "sync.json", "uv", "sync", env=env, timeout=300)
    assert synced.code == 0, synced.stderr
    data = json.loads((work / "sync.json").read_text())
    assert_corp_report(data, corp, private_url=stack.private_url)
    assert data["command"] == "uv sync"
    assert "corp-shared is on the public index too" in provenance_line(synced.stderr)


def test_poetry_lock_and_install_reports(stack, logged_in, corp, project_env):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        pyproject(
            ["corp-app"],
            poetry_sources=[
                ("private", stack.private_url, "primary"),
                ("public", stack.public_url, "supplemental"),
            ],
        )
    )
    crane = Crane({**project_env, "CRANE_HOME": logged_in.env["CRANE_HOME"]}, cwd=work)
    locked = crane.run("--report", "lock.json", "poetry", "lock", timeout=300)
    assert locked.code == 0, locked.stdout + locked.stderr
    found = projects(json.loads((work / "lock.json").read_text()))
    assert found["corp-shared"]["source"] == "private"
    assert found["public-helper"]["source"] == "public"
    installed = crane.run("--report", "install.json", "poetry", "install", timeout=300)
    assert installed.code == 0, installed.stdout + installed.stderr
    data = json.loads((work / "install.json").read_text())
    assert_corp_report(data, corp, private_url=stack.private_url)
    assert data["command"] == "poetry install"
    assert "1 from the public index (public-helper)" in provenance_line(installed.stderr)


def test_the_public_index_is_not_asked_about_private_projects_when_told_not_to(
    stack, logged_in, tmp_path
):
    report = tmp_path / "r.json"
    env = {**logged_in.env, "CRANE_PUBLIC_CHECK": "0"}
    result = logged_in.run(
        "--report", str(report),
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "corp-app",
        env=env,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    line = provenance_line(result.stderr)
    assert "2 projects from the private index" in line
    assert "on the public index too" not in line
    found = projects(json.loads(report.read_text()))
    assert found["corp-shared"]["also_on_public_index"] is None


def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(stack, logged_in, tmp_path):
    for where in (tmp_path, tmp_path / "missing" / "r.json"):
        result = logged_in.run(
            "--report", str(where), "pip", "install", "-i", stack.private_url, "corp-app"
        )
        assert result.code == 2, result.stderr
        assert "crane: report file " in result.stderr
        assert "provenance" not in result.stderr


def test_a_failing_run_still_reports(stack, logged_in, tmp_path):
    report = tmp_path / "r.json"
    result = logged_in.run(
        "--report", str(report),
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        "no-such-project-anywhere",
    )  # fmt: skip
    assert result.code == 1, result.stderr
    data = json.loads(report.read_text())
    assert data["exit_code"] == 1
    entry = projects(data)["no-such-project-anywhere"]
    assert entry["source"] == "none"
    assert entry["private_index_answers"][0]["status"] == 404


# -- crane audit ---------------------------------------------------------------------------


def plain(tool: str, *args: str, env: dict[str, str], cwd: Path) -> None:
    """`tool` run directly, without crane (the way a confusion happens)."""
    found = shutil.which(tool, path=env["PATH"])
    assert found is not None, tool
    done = subprocess.run([found, *args], env=env, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def confused_uv_lock(stack, logged_in) -> Path:
    """A uv.lock written by plain uv against the public index only: it took corp-shared
    99.0.0 from there."""
    work = logged_in.cwd / "confused"
    work.mkdir()
    (work / "pyproject.toml").write_text(
        pyproject(["corp-shared", "public-helper"], uv_indexes=[("public", stack.public_url, True)])
    )
    plain("uv", "lock", env=uv_env(logged_in.env), cwd=work)
    assert 'name = "corp-shared"\nversion = "99.0.0"' in (work / "uv.lock").read_text()
    return work / "uv.lock"


def test_audit_of_a_lock_that_took_a_private_project_from_the_public_index_exits_6(
    stack, logged_in, confused_uv_lock
):
    result = logged_in.run("audit", "--lock", str(confused_uv_lock))
    assert result.code == 6, result.stdout + result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "CONFUSION" in rows["corp-shared"]
    assert "99.0.0" in rows["corp-shared"]
    assert "CONFUSION" not in rows["public-helper"]
    finding = next(line for line in result.stderr.splitlines() if "corp-shared 99.0.0" in line)
    assert "uv.lock:" in finding
    assert stack.public_url.rstrip("/") in finding
    assert "dependency confusion: corp-shared" in result.stderr

    as_json = logged_in.run("audit", "--json", "--lock", str(confused_uv_lock))
    assert as_json.code == 6
    data = json.loads(as_json.stdout)
    assert data["format"] == "crane-audit"
    assert data["exit_code"] == 6
    found = {row["name"]: row for row in data["projects"]}
    assert found["corp-shared"]["findings"]
    assert found["corp-shared"]["presence"] == "both"
    assert found["corp-shared"]["private"]["versions"] == ["1.0.0"]
    assert found["corp-shared"]["public"]["versions"] == ["99.0.0"]
    assert found["corp-shared"]["versions_in_common"] == []
    # public-helper is not on the private index and the lock says where it came from:
    # the public index was not asked about it.
    assert found["public-helper"]["public"]["status"] == "not asked"


def test_audit_of_a_lock_written_through_crane_passes(stack, logged_in):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(uv_project(stack))
    assert logged_in.run("uv", "lock", env=uv_env(logged_in.env), timeout=300).code == 0
    result = logged_in.run("audit")  # the pyproject.toml and uv.lock of the directory
    assert result.code == 0, result.stdout + result.stderr
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["PROJECT", "PRIVATE", "PUBLIC", "IN", "USE", "VERDICT"]
    rows = {line.split()[0]: line for line in lines}
    assert set(rows) == {"corp-app", "corp-shared", "public-helper"}
    assert "no version in common; the public index's is higher (99.0.0)" in rows["corp-shared"]
    assert "private only" in rows["corp-app"]


def test_audit_of_an_environment_that_installed_the_decoy_exits_6(stack, logged_in, tmp_path):
    venv = tmp_path / "venv"
    env = logged_in.env
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    plain(python, "-m", "pip", "install", "-q", "-i", stack.public_url, "corp-shared",
          env=env, cwd=tmp_path)  # fmt: skip
    result = logged_in.run("audit", "--python", python)
    assert result.code == 6, result.stdout + result.stderr
    assert "corp-shared 99.0.0 is installed, a version only the public index has" in (result.stderr)
    # The same environment with the private corp-shared is clean.
    private_files = stack.private_upstream_url
    plain(python, "-m", "pip", "install", "-q", "--force-reinstall",
          "-i", private_files, "corp-shared==1.0.0", env=env, cwd=tmp_path)  # fmt: skip
    clean = logged_in.run("audit", "--python", python)
    assert clean.code == 0, clean.stdout + clean.stderr


def test_audit_of_requirements_says_private_public_both_and_missing(stack, logged_in, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("corp-app>=1\npublic-helper\n-r more.txt\n")
    (tmp_path / "more.txt").write_text("Corp_Shared\nno-such-project-anywhere\n")
    result = logged_in.run("audit", "--json", "-r", str(requirements))
    assert result.code == 0, result.stderr
    found = {row["name"]: row for row in json.loads(result.stdout)["projects"]}
    assert {name: row["presence"] for name, row in found.items()} == {
        "corp-app": "private",
        "corp-shared": "both",
        "public-helper": "public",
        "no-such-project-anywhere": "neither",
    }
    # Project pages only, read-only: the private index saw no file request.
    paths = [record.path for record in stack.gate.records()]
    assert not [path for path in paths if path.endswith((".whl", ".tar.gz"))], paths


def test_private_names_lists_what_the_public_index_lacks(stack, logged_in):
    result = logged_in.run("audit", "--private-names")
    assert result.code == 0, result.stderr
    listed = result.stdout.split()
    assert {"corp-app", "corp-internal-only"} <= set(listed)
    assert "corp-shared" not in listed  # the public index has it (the decoy)
    assert "corp-shared" in result.stderr  # named as on both
    data = json.loads(logged_in.run("audit", "--private-names", "--json").stdout)
    assert "corp-shared" in data["on_both"]
    assert set(data["private_only"]) == set(listed)


def test_audit_needs_an_index_choice_when_several_are_registered(stack, logged_in, tls_front):
    logged_in.register(stack, tls_front.url)
    result = logged_in.run("audit", "corp-app")
    assert result.code == 2, result.stderr
    assert "--index" in result.stderr
    chosen = logged_in.run("audit", "--index", stack.private_url, "corp-app")
    assert chosen.code == 0, chosen.stderr


@pytest.mark.parametrize("tool", ["pip-lock", "poetry"])
def test_audit_of_pylock_and_poetry_lock_from_the_public_index_exits_6(
    stack, logged_in, tool, project_env
):
    """The same confusion in the other lock formats, each written by its real tool alone."""
    work = logged_in.cwd / tool
    work.mkdir()
    if tool == "pip-lock":
        plain("pip", "lock", "-q", "-i", stack.public_url, "corp-shared", "public-helper",
              "-o", "pylock.toml", env=logged_in.env, cwd=work)  # fmt: skip
        lock = work / "pylock.toml"
    else:
        (work / "pyproject.toml").write_text(
            pyproject(
                ["corp-shared", "public-helper"],
                poetry_sources=[("mirror", stack.public_url, "primary")],
            )
        )
        plain("poetry", "lock", env=project_env, cwd=work)
        lock = work / "poetry.lock"
    result = logged_in.run("audit", "--lock", str(lock))
    assert result.code == 6, result.stdout + result.stderr
    assert "dependency confusion: corp-shared" in result.stderr
    assert f"{lock.name}:" in result.stderr
    assert "corp-shared 99.0.0" in result.stderr
    # In its directory, `crane audit` alone reads the same lock (and the pyproject.toml).
    here = Crane(logged_in.env, cwd=work).run("audit")
    assert here.code == 6, here.stdout + here.stderr


def test_a_run_crane_leaves_unchanged_or_stops_early_still_writes_its_report(
    stack, logged_in, tmp_path
):
    report = tmp_path / "r.json"
    result = logged_in.run("--report", str(report), "uv", "--version")
    assert result.code == 0, result.stderr
    data = json.loads(report.read_text())
    assert (data["guarded"], data["command"], data["projects"]) == (False, "uv", [])
    refused = logged_in.run(
        "--report", str(report),
        "pip", "install", "-i", stack.private_url, "--extra-index-url", stack.public_url, "x",
    )  # fmt: skip
    assert refused.code == 3, refused.stderr
    data = json.loads(report.read_text())
    assert data["guarded"] is False
    assert data["exit_code"] is None
    assert "--extra-index-url" in data["error"]
