"""Every front door end to end: `uv tool`, `uvx`, pipx, pdm and `crane run`, with the
real tools from the project's environment, the real IdP and the real indexes.

A company's command-line tool:
- private index: tool-cli 1.0 (console script `tool-cli`, requires tool-shared and
  helper-lib), tool-shared 1.0;
- public index: tool-shared 99.0 (a dependency-confusion decoy), helper-lib 1.0.

`tool-cli` prints `name version origin` for itself and each dependency, so a test reads
from the command's own output which index each came from.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from harness import credentialed, uv_env
from stack.wheels import build_wheel

PRIVATE = (
    ("tool-cli", "1.0", ("tool-shared", "helper-lib"), ("tool-cli",)),
    ("tool-shared", "1.0", (), ()),
    ("tool-extra", "1.0", (), ()),
)
PUBLIC = (
    ("tool-shared", "99.0", (), ()),
    ("tool-extra", "99.0", (), ()),
    ("helper-lib", "1.0", (), ()),
    ("tool-public", "1.0", (), ("tool-public",)),
)
RAN = "tool-cli 1.0 private; tool-shared 1.0 private; helper-lib 1.0 public"
"""What `tool-cli` prints when the private index won and the public one filled the gap."""


@pytest.fixture(scope="session")
def tool_cli(stack) -> None:
    """The wheels, and pip's own on the public index: pipx's pip backend upgrades pip in
    its shared environment (virtualenv carries the wheel; nothing is downloaded)."""
    import shutil

    import virtualenv

    embedded = Path(virtualenv.__file__).parent / "seed" / "wheels" / "embed"
    from packaging.version import Version

    newest_pip = max(embedded.glob("pip-*.whl"), key=lambda p: Version(p.name.split("-")[1]))
    shutil.copy(newest_pip, stack.public_dir)
    for directory, wheels, origin in (
        (stack.private_dir, PRIVATE, "private"),
        (stack.public_dir, PUBLIC, "public"),
    ):
        for name, version, requires, scripts in wheels:
            build_wheel(directory, name, version, requires, origin, scripts=scripts)


@pytest.fixture
def user(stack, crane, tool_cli, tmp_path):
    """crane logged in to the private index (its public index the local one), with the
    tools' homes under tmp_path."""
    base = tmp_path / "homes"
    for name, sub in (
        ("UV_TOOL_DIR", "uv-tools"),
        ("UV_TOOL_BIN_DIR", "bin"),
        ("PIPX_HOME", "pipx"),
        ("PIPX_BIN_DIR", "bin"),
        ("PIPX_MAN_DIR", "man"),
        ("PDM_HOME", "pdm"),
    ):
        (base / sub).mkdir(parents=True, exist_ok=True)
        crane.env[name] = str(base / sub)
    crane.env.update(uv_env(crane.env))
    crane.register(stack, None, "--public-index", stack.public_url)
    assert crane.login(stack).code == 0
    stack.gate.clear()
    return crane


def bin_dir(crane) -> Path:
    return Path(crane.env["UV_TOOL_BIN_DIR"])


def assert_private_won(stack, output: str) -> None:
    assert RAN in output, output
    private_root = stack.private_url.split("://", 1)[1].split("/", 1)[1]
    records = credentialed(stack.gate.records(), "/" + private_root)
    assert records, "the private index saw no request with the bearer token"


def run_cli(crane, path: Path) -> str:
    import subprocess

    proc = subprocess.run(
        [str(path)], env=crane.env, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


# -- uv tool, uvx ----------------------------------------------------------------------------


def receipt(crane, name: str) -> dict:
    return tomllib.loads((Path(crane.env["UV_TOOL_DIR"]) / name / "uv-receipt.toml").read_text())


@pytest.mark.parametrize("option", ["--index-url", "--default-index", "--index"])
def test_uv_tool_install_takes_the_cli_private_first(stack, user, option):
    result = user.run("uv", "tool", "install", option, stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, run_cli(user, bin_dir(user) / "tool-cli"))
    recorded = json.dumps(receipt(user, "tool-cli"))
    assert "127.0.0.1" not in recorded.replace(stack.private_url, ""), recorded
    assert stack.private_url.rstrip("/") in recorded


def test_uv_tool_upgrade_finds_the_index_in_the_receipt(stack, user):
    assert user.run("uv", "tool", "install", "--index-url", stack.private_url, "tool-cli").code == 0
    stack.gate.clear()
    result = user.run("uv", "tool", "upgrade", "tool-cli")
    assert result.code == 0, result.stderr
    assert stack.gate.records(), "the upgrade did not ask the private index"
    assert_private_won(stack, run_cli(user, bin_dir(user) / "tool-cli"))
    assert "127.0.0.1" not in json.dumps(receipt(user, "tool-cli")).replace(stack.private_url, "")
    result = user.run("uv", "tool", "upgrade", "tool-cli")
    assert result.code == 0, result.stderr
    (entry,) = receipt(user, "tool-cli")["tool"]["options"]["index"]  # one, however many runs
    assert entry["url"] == stack.private_url


def test_uv_tool_upgrade_all_leaves_a_public_tools_receipt_alone(stack, user):
    """`--all` upgrades every tool through the door, and uv writes the door into every
    receipt; a tool installed from the public index keeps naming only that index."""
    import subprocess

    assert user.run("uv", "tool", "install", "--index-url", stack.private_url, "tool-cli").code == 0
    plain = {k: v for k, v in user.env.items() if not k.startswith("CRANE_")}
    subprocess.run(
        ["uv", "tool", "install", "--default-index", stack.public_url, "tool-public"],
        env=plain, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result = user.run("uv", "tool", "upgrade", "--all")
    assert result.code == 0, result.stderr
    public_receipt = json.dumps(receipt(user, "tool-public"))
    assert stack.private_url not in public_receipt
    assert "127.0.0.1" not in public_receipt.replace(stack.public_url, "")
    (entry,) = receipt(user, "tool-cli")["tool"]["options"]["index"]
    assert entry["url"] == stack.private_url
    proc = subprocess.run(
        ["uv", "tool", "upgrade", "--reinstall", "tool-public"],
        env=plain, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_plain_uv_tool_upgrade_after_crane_fails_at_the_private_index(stack, user):
    """The receipt names the private index, so uv alone asks it (and is refused) rather
    than take tool-cli from anywhere else."""
    assert user.run("uv", "tool", "install", "--index-url", stack.private_url, "tool-cli").code == 0
    import subprocess

    env = {k: v for k, v in user.env.items() if not k.startswith("CRANE_")}
    proc = subprocess.run(
        ["uv", "tool", "upgrade", "--reinstall", "tool-cli"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "401" in proc.stderr or "Unauthorized" in proc.stderr, proc.stderr


def test_uvx_runs_the_private_command(stack, user):
    result = user.run("uvx", "--index-url", stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, result.stdout)


def test_uv_tool_run_with_the_environment_index(stack, user):
    env = {**user.env, "UV_DEFAULT_INDEX": stack.private_url}
    result = user.run("uv", "tool", "run", "tool-cli", env=env)
    assert result.code == 0, result.stderr
    assert_private_won(stack, result.stdout)


def test_uv_tool_extra_index_is_refused(stack, user):
    result = user.run(
        "uv", "tool", "install", "--index-url", stack.private_url,
        "--extra-index-url", stack.public_url, "tool-cli",
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "--extra-index-url" in result.stderr
    assert "command line" in result.stderr
    assert not (bin_dir(user) / "tool-cli").exists()


def test_uvx_options_after_the_command_are_the_commands(stack, user):
    """`uvx tool-cli --extra-index-url X` gives tool-cli the option: not uv's, not refused."""
    env = {**user.env, "UV_DEFAULT_INDEX": stack.private_url}
    result = user.run("uvx", "tool-cli", "--extra-index-url", "http://127.0.0.1:9/x", env=env)
    assert result.code == 0, result.stderr
    assert RAN in result.stdout


def test_uv_tool_user_config_index_is_used(stack, user):
    config = Path(user.env["XDG_CONFIG_HOME"]) / "uv"
    config.mkdir(parents=True, exist_ok=True)
    (config / "uv.toml").write_text(f'index-url = "{stack.private_url}"\n')
    result = user.run("uvx", "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, result.stdout)


def test_uv_tool_ignores_the_project_config(stack, user, tmp_path):
    """uv tool commands read no project uv.toml: one there names no index for them."""
    os.makedirs(user.cwd, exist_ok=True)
    (user.cwd / "uv.toml").write_text(f'extra-index-url = ["{stack.public_url}"]\n')
    env = {**user.env, "UV_DEFAULT_INDEX": stack.private_url}
    result = user.run("uvx", "tool-cli", env=env)
    assert result.code == 0, result.stderr
    assert RAN in result.stdout


# -- pipx ------------------------------------------------------------------------------------


def pipx_metadata(crane, name: str) -> dict:
    path = Path(crane.env["PIPX_HOME"]) / "venvs" / name / "pipx_metadata.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("backend", ["uv", "pip"])
def test_pipx_install_takes_the_cli_private_first(stack, user, backend):
    user.env["PIPX_DEFAULT_BACKEND"] = backend
    result = user.run("pipx", "install", "--index-url", stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, run_cli(user, Path(user.env["PIPX_BIN_DIR"]) / "tool-cli"))
    recorded = json.dumps(pipx_metadata(user, "tool-cli"))
    assert "127.0.0.1" not in recorded.replace(stack.private_url.rstrip("/"), ""), recorded


def test_pipx_pip_backend_records_the_private_index_for_upgrades(stack, user, tmp_path):
    """With pip, crane hands pipx the door through PIP_INDEX_URL only, so pipx records no
    index itself: crane records the private one, and a later upgrade, under crane or not,
    never asks another index (here a pip.conf naming the public index)."""
    user.env["PIPX_DEFAULT_BACKEND"] = "pip"
    result = user.run("pipx", "install", "--index-url", stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    args = pipx_metadata(user, "tool-cli")["main_package"]["pip_args"]
    assert args == ["--index-url", stack.private_url]
    conf = tmp_path / "pip-public.conf"
    conf.write_text(f"[global]\nindex-url = {stack.public_url}\n")
    stack.gate.clear()
    result = user.run("pipx", "upgrade", "tool-cli", env={**user.env, "PIP_CONFIG_FILE": str(conf)})
    assert result.code == 0, result.stderr
    assert stack.gate.records(), "the upgrade did not ask the private index"
    assert_private_won(stack, run_cli(user, Path(user.env["PIPX_BIN_DIR"]) / "tool-cli"))


def test_pipx_pip_args_index_and_upgrade(stack, user):
    result = user.run("pipx", "install", f"--pip-args=--index-url {stack.private_url}", "tool-cli")
    assert result.code == 0, result.stderr
    stack.gate.clear()
    result = user.run("pipx", "upgrade", "tool-cli")  # the index pipx recorded, found again
    assert result.code == 0, result.stderr
    assert stack.gate.records()
    stack.gate.clear()
    result = user.run("pipx", "upgrade", "--index-url", stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    assert stack.gate.records()
    assert_private_won(stack, run_cli(user, Path(user.env["PIPX_BIN_DIR"]) / "tool-cli"))


def test_pipx_run_and_inject(stack, user):
    result = user.run("pipx", "run", "--index-url", stack.private_url, "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, result.stdout)
    env = {**user.env, "PIP_INDEX_URL": stack.private_url}
    assert user.run("pipx", "install", "tool-cli", env=env).code == 0
    result = user.run("pipx", "inject", "tool-cli", "tool-extra", env=env)
    assert result.code == 0, result.stderr
    venv = Path(user.env["PIPX_HOME"]) / "venvs" / "tool-cli"
    site = next(venv.glob("lib/python*/site-packages"))
    assert "ORIGIN = 'private'" in (site / "tool_extra" / "__init__.py").read_text()


def test_pipx_extra_index_in_pip_args_is_refused(stack, user):
    result = user.run(
        "pipx", "install", "--index-url", stack.private_url,
        f"--pip-args=--extra-index-url {stack.public_url}", "tool-cli",
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "extra-index-url" in result.stderr


def test_pipx_extra_index_in_the_environment_is_refused(stack, user):
    env = {**user.env, "PIP_EXTRA_INDEX_URL": stack.public_url}
    result = user.run("pipx", "install", "--index-url", stack.private_url, "tool-cli", env=env)
    assert result.code == 3, result.stderr
    assert "PIP_EXTRA_INDEX_URL" in result.stderr


# -- crane run -------------------------------------------------------------------------------


def fresh_venv(tmp_path: Path) -> Path:
    import subprocess
    import sys

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    return venv


def test_run_python_m_pip_installs_the_private_package(stack, user, tmp_path):
    venv = fresh_venv(tmp_path)
    result = user.run("run", "--", str(venv / "bin" / "python"), "-m", "pip", "install", "tool-cli")
    assert result.code == 0, result.stderr
    assert_private_won(stack, run_cli(user, venv / "bin" / "tool-cli"))


def test_run_tox_installs_the_private_package(stack, user, tmp_path):
    project = tmp_path / "toxproject"
    project.mkdir()
    (project / "tox.ini").write_text(
        "[tox]\nskipsdist = true\n\n[testenv]\nskip_install = true\ndeps = tool-cli\n"
        "commands = tool-cli\n"
    )
    result = user.run("run", "--", "tox", "-c", str(project / "tox.ini"), "-e", "py")
    assert result.code == 0, result.stderr + result.stdout
    assert_private_won(stack, result.stdout)


def test_run_nox_installs_the_private_package(stack, user, tmp_path):
    project = tmp_path / "noxproject"
    project.mkdir()
    (project / "noxfile.py").write_text(
        "import nox\n\n\n@nox.session(python=False, venv_backend='virtualenv')\n"
        "def cli(session):\n    pass\n\n\n@nox.session(venv_backend='virtualenv')\n"
        "def corp(session):\n    session.install('tool-cli')\n    session.run('tool-cli')\n"
    )
    result = user.run("run", "--", "nox", "-f", str(project / "noxfile.py"), "-s", "corp")
    assert result.code == 0, result.stderr + result.stdout
    assert_private_won(stack, result.stdout + result.stderr)


def test_run_refuses_an_extra_index_in_the_environment(stack, user):
    env = {**user.env, "PIP_EXTRA_INDEX_URL": stack.public_url}
    result = user.run("run", "--", "true", env=env)
    assert result.code == 3, result.stderr
    assert "PIP_EXTRA_INDEX_URL" in result.stderr


def test_run_with_several_indexes_lists_them(stack, user, tls_front):
    assert user.register(stack, tls_front.url).code == 0
    result = user.run("run", "--", "true")
    assert result.code == 2, result.stderr
    assert stack.private_url in result.stderr
    assert tls_front.url in result.stderr
    result = user.run("run", "-i", stack.private_url, "--", "true")
    assert result.code == 0, result.stderr


# -- pdm -------------------------------------------------------------------------------------


def pdm_project(stack, root: Path, *, include: bool = True) -> Path:
    """tool-suite: tool-cli from the private source (its projects named in include_packages),
    everything else from the public index as pdm's `pypi` source."""
    root.mkdir(parents=True, exist_ok=True)
    include_line = 'include_packages = ["tool-*"]\n' if include else ""
    (root / "pyproject.toml").write_text(
        '[project]\nname = "tool-suite"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["tool-cli"]\n\n[tool.pdm]\ndistribution = false\n\n'
        f'[[tool.pdm.source]]\nname = "private"\nurl = "{stack.private_url}"\n{include_line}\n'
        f'[[tool.pdm.source]]\nname = "pypi"\nurl = "{stack.public_url}"\n'
    )
    return root


def test_pdm_lock_and_install_take_the_private_projects(stack, user, tmp_path):
    project = pdm_project(stack, tmp_path / "pdmproject")
    before = (project / "pyproject.toml").read_bytes()
    env = {**user.env, "PDM_CHECK_UPDATE": "false", "PDM_CACHE_DIR": str(tmp_path / "pdm-cache")}
    result = user.run("pdm", "lock", "-p", str(project), env=env)
    assert result.code == 0, result.stderr
    lock = (project / "pdm.lock").read_text()
    assert "127.0.0.1" not in lock
    locked = lock
    result = user.run("pdm", "install", "-p", str(project), env=env)
    assert result.code == 0, result.stderr
    assert (project / "pyproject.toml").read_bytes() == before
    assert (project / "pdm.lock").read_text() == locked
    assert_private_won(stack, run_cli(user, project / ".venv" / "bin" / "tool-cli"))


def test_pdm_without_include_packages_is_refused(stack, user, tmp_path):
    project = pdm_project(stack, tmp_path / "pdmproject", include=False)
    env = {**user.env, "PDM_CHECK_UPDATE": "false"}
    result = user.run("pdm", "lock", "-p", str(project), env=env)
    assert result.code == 3, result.stderr
    assert "include_packages" in result.stderr
    assert not (project / "pdm.lock").exists()


@pytest.mark.parametrize("spelling", ["{}", "file://{}", "file://localhost{}", "file://{}%2F"])
def test_run_refuses_a_find_links_directory_holding_a_private_project(
    stack, user, tmp_path, spelling
):
    """PIP_FIND_LINKS reaches every pip of the run: a decoy of a private project there is
    refused before the command starts, as for crane pip, however the location is spelled."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tool-shared", "99.0", (), "public")
    env = {**user.env, "PIP_FIND_LINKS": spelling.format(wheels)}
    result = user.run("run", "--", "true", env=env)
    assert result.code == 3, result.stderr
    assert "tool-shared" in result.stderr


def test_pip_refuses_a_find_links_file_url_on_localhost(stack, user, tmp_path):
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tool-shared", "99.0", (), "public")
    result = user.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        "--find-links", f"file://localhost{wheels}", "tool-shared",
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "tool_shared-99.0" in result.stderr


def test_uvx_refuses_an_option_it_cannot_place(stack, user):
    result = user.run(
        "uvx", "--some-future-option", "x", "--index-url", stack.private_url,
        "--extra-index-url", stack.public_url, "tool-cli",
    )  # fmt: skip
    assert result.code == 2, result.stderr
    assert "--some-future-option" in result.stderr


def test_pdm_install_refuses_a_lock_that_takes_a_private_project_elsewhere(stack, user, tmp_path):
    """A static_urls pdm.lock edited to fetch tool-shared from the public index's file is
    refused before pdm installs anything (pdm would download exactly that URL)."""
    project = pdm_project(stack, tmp_path / "pdmproject")
    env = {**user.env, "PDM_CHECK_UPDATE": "false", "PDM_CACHE_DIR": str(tmp_path / "pdm-cache")}
    result = user.run("pdm", "lock", "-S", "static_urls", "-p", str(project), env=env)
    assert result.code == 0, result.stderr
    lock = project / "pdm.lock"
    text = lock.read_text()
    private_origin = stack.private_url.rsplit("/simple", 1)[0]
    public_origin = stack.public_url.rsplit("/simple", 1)[0]
    assert "tool_shared-1.0-py3-none-any.whl" in text
    lock.write_text(
        text.replace(
            f"{private_origin}/packages/tool_shared-1.0-py3-none-any.whl",
            f"{public_origin}/packages/tool_shared-99.0-py3-none-any.whl",
        )
    )
    assert lock.read_text() != text
    result = user.run("pdm", "install", "-p", str(project), env=env)
    assert result.code == 3, result.stderr
    assert "tool-shared" in result.stderr
    assert "pdm.lock" in result.stderr
    assert not (project / ".venv" / "bin" / "tool-cli").exists()


def test_pdm_add_and_sync(stack, user, tmp_path):
    project = pdm_project(stack, tmp_path / "pdmproject")
    env = {**user.env, "PDM_CHECK_UPDATE": "false", "PDM_CACHE_DIR": str(tmp_path / "pdm-cache")}
    result = user.run("pdm", "add", "-p", str(project), "tool-extra", env=env)
    assert result.code == 0, result.stderr
    assert "tool-extra" in (project / "pyproject.toml").read_text()
    result = user.run("pdm", "sync", "-p", str(project), env=env)
    assert result.code == 0, result.stderr
    site = next((project / ".venv").glob("lib/python*/site-packages"))
    assert "ORIGIN = 'private'" in (site / "tool_extra" / "__init__.py").read_text()
    assert_private_won(stack, run_cli(user, project / ".venv" / "bin" / "tool-cli"))
