"""Settings that would bypass crane's proxy, rejected through the real `crane` command.

The planning rules are unit-tested table by table in tests/launch; these tests prove the
wiring: one `crane: <place>: ...` line, exit code 3, no traceback, nothing run.
"""

from __future__ import annotations

import pytest
from harness import Result

MIRROR = "http://127.0.0.1:9/mirror/simple/"
EXTRA_WHY = "projects could come from another index and bypass private-first routing"
PROXY_WHY = (
    "crane's proxy must be the tool's only way to the index; set HTTPS_PROXY for crane instead"
)


@pytest.fixture
def registered(stack, crane):
    crane.register(stack, None, "--public-index", stack.public_url)
    return crane


def assert_rejected(result: Result, line: str) -> None:
    assert result.code == 3, result.stderr
    assert result.stderr.strip().splitlines() == [f"crane: {line}"]
    assert result.stdout == ""


def test_pip_extra_index_url_on_the_command_line(stack, registered):
    result = registered.run(
        "pip", "install", "-i", stack.private_url, "--extra-index-url", MIRROR, "x"
    )
    assert_rejected(
        result, f"command line: --extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_pip_proxy_on_the_command_line(stack, registered):
    result = registered.run(
        "pip", "--proxy", "http://127.0.0.1:9", "install", "-i", stack.private_url, "x"
    )
    assert_rejected(result, f"command line: --proxy is not allowed under crane: {PROXY_WHY}")


def test_pip_extra_index_url_in_the_environment(stack, registered):
    env = {**registered.env, "PIP_EXTRA_INDEX_URL": MIRROR}
    result = registered.run("pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result,
        "environment variable PIP_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        + EXTRA_WHY,
    )


def test_pip_proxy_in_the_environment(stack, registered):
    env = {**registered.env, "PIP_PROXY": "http://127.0.0.1:9"}
    result = registered.run("pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result, f"environment variable PIP_PROXY: proxy is not allowed under crane: {PROXY_WHY}"
    )


def test_pip_extra_index_url_in_a_config_file(stack, registered, tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nextra-index-url = {MIRROR}\n")
    env = {**registered.env, "PIP_CONFIG_FILE": str(config)}
    result = registered.run("pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result,
        f"pip config file {config}: [global]: extra-index-url is not allowed under crane: "
        + EXTRA_WHY,
    )


def test_pip_proxy_in_a_config_file(stack, registered, tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[install]\nproxy = http://127.0.0.1:9\n")
    env = {**registered.env, "PIP_CONFIG_FILE": str(config)}
    result = registered.run("pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result,
        f"pip config file {config}: [install]: proxy is not allowed under crane: {PROXY_WHY}",
    )


def test_pip_extra_index_url_in_a_nested_requirements_file(stack, registered):
    work = registered.cwd
    (work / "reqs").mkdir()
    (work / "reqs" / "base.txt").write_text(f"decoy-pkg\n\n--extra-index-url={MIRROR}\n")
    (work / "requirements.txt").write_text("-r reqs/base.txt\n")
    result = registered.run("pip", "install", "-i", stack.private_url, "-r", "requirements.txt")
    assert_rejected(
        result,
        f"requirements file reqs/base.txt line 3: --extra-index-url is not allowed under crane: "
        f"{EXTRA_WHY}",
    )


def test_pip_foreign_index_in_a_requirements_file(stack, registered):
    (registered.cwd / "requirements.txt").write_text(f"--index-url {MIRROR}\ndecoy-pkg\n")
    result = registered.run("pip", "install", "-i", stack.private_url, "-r", "requirements.txt")
    assert result.code == 3, result.stderr
    assert result.stderr.startswith("crane: requirements file requirements.txt line 1: ")
    assert MIRROR in result.stderr


def test_uv_extra_index_url_on_the_command_line(stack, registered):
    result = registered.run(
        "uv", "pip", "install", "-i", stack.private_url, "--extra-index-url", MIRROR, "x"
    )
    assert_rejected(
        result, f"command line: --extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_uv_extra_index_url_in_the_environment(stack, registered):
    env = {**registered.env, "UV_EXTRA_INDEX_URL": MIRROR}
    result = registered.run("uv", "pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result,
        "environment variable UV_EXTRA_INDEX_URL: extra-index-url is not allowed under crane: "
        + EXTRA_WHY,
    )


def test_uv_index_in_the_environment(stack, registered):
    env = {**registered.env, "UV_INDEX": f"mirror={MIRROR}"}
    result = registered.run("uv", "pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result, f"environment variable UV_INDEX: index is not allowed under crane: {EXTRA_WHY}"
    )


def test_uv_extra_index_url_in_uv_toml(stack, registered):
    config = registered.cwd / "uv.toml"
    config.write_text(f'extra-index-url = ["{MIRROR}"]\n')
    result = registered.run("uv", "pip", "install", "-i", stack.private_url, "x")
    assert_rejected(
        result, f"uv config file {config}: extra-index-url is not allowed under crane: {EXTRA_WHY}"
    )


def test_an_unregistered_index_on_the_command_line_suggests_the_closest(stack, registered):
    typo = stack.private_url.replace("/simple/", "/simpel/")
    result = registered.run("pip", "install", "-i", typo, "x")
    assert result.code == 3
    assert result.stderr.strip() == (
        f"crane: {typo} is not a registered index (did you mean {stack.private_url}?); "
        f"register it with `crane index register {typo} ...`"
    )


def test_no_registered_index_runs_the_tool_unchanged(stack, registered, tmp_path):
    env = {**registered.env, "PIP_INDEX_URL": stack.public_url}
    result = registered.run(
        "pip", "download", "--no-deps", "-d", str(tmp_path / "d"), "decoy-pkg", env=env
    )
    assert result.code == 0, result.stderr
    assert "crane: no registered index in play; running pip unchanged" in result.stderr
    assert (tmp_path / "d" / "decoy_pkg-99.0-py3-none-any.whl").exists()


def test_a_private_index_line_in_requirements_goes_behind_the_proxy(stack, registered, tmp_path):
    assert registered.login(stack).code == 0
    work = registered.cwd
    original = f"--index-url {stack.private_url}\ndecoy-pkg\n"
    (work / "requirements.txt").write_text(original)
    target = tmp_path / "target"
    result = registered.run("pip", "install", "--target", str(target), "-r", "requirements.txt")
    assert result.code == 0, result.stderr
    assert "ORIGIN = 'private'" in (target / "decoy_pkg" / "__init__.py").read_text()
    # The copy crane handed to pip is gone; the user's file is untouched.
    assert sorted(p.name for p in work.iterdir()) == ["requirements.txt"]
    assert (work / "requirements.txt").read_text() == original


def test_a_private_index_that_uv_would_ignore_is_an_error(stack, registered):
    # uv gives UV_DEFAULT_INDEX precedence over -i: crane must not run uv without it.
    env = {**registered.env, "UV_DEFAULT_INDEX": stack.public_url}
    result = registered.run("uv", "pip", "install", "-i", stack.private_url, "x", env=env)
    assert_rejected(
        result,
        f"environment variable UV_DEFAULT_INDEX ({stack.public_url}) overrides the private "
        f"index {stack.private_url} given on the command line: uv would not use the private "
        "index; unset it, or give the private index there",
    )


@pytest.mark.parametrize(
    ("where", "place"),
    [
        ("argv", "command line: --no-proxy-env"),
        ("env", "environment variable PIP_NO_PROXY_ENV: no-proxy-env"),
    ],
)
def test_pip_ignoring_the_proxy_variables_is_rejected(stack, registered, where, place):
    env = dict(registered.env)
    args = ["install", "-i", stack.private_url, "x"]
    if where == "argv":
        args.append("--no-proxy-env")
    else:
        env["PIP_NO_PROXY_ENV"] = "1"
    result = registered.run("pip", *args, env=env)
    assert_rejected(
        result,
        f"{place} is not allowed under crane: it makes pip ignore the proxy variables "
        "through which every request of the tool passes crane's guard",
    )


UV_PROJECT = """\
[project]
name = "demo-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["decoy-pkg"]

[tool.uv]
package = false

[[tool.uv.index]]
name = "private"
url = "{private}"
"""


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (
            ["lock", "--extra-index-url", "{public}"],
            {},
            "command line: --extra-index-url is not allowed under crane",
        ),
        (["lock"], {"UV_EXTRA_INDEX_URL": "{public}"}, "environment variable UV_EXTRA_INDEX_URL"),
        (["lock", "--index", "pub={public}"], {}, "uv index 'pub' is consulted before private"),
        (["lock"], {"UV_INDEX": "pub={public}"}, "uv index 'pub' is consulted before private"),
        (
            ["add", "decoy-pkg", "--index", "pub={public}"],
            {},
            "uv index 'pub' is consulted before private",
        ),
        (
            ["lock", "--find-links", "http://127.0.0.1:9/links/"],
            {},
            "command line: --find-links http://127.0.0.1:9/links/ is not allowed under crane",
        ),
        (["sync"], {"UV_INDEX_STRATEGY": "unsafe-best-match"}, "uv index-strategy"),
    ],
    ids=[
        "extra-argv",
        "extra-env",
        "index-argv",
        "index-env",
        "add-index",
        "find-links",
        "strategy",
    ],
)
def test_uv_project_commands_refuse_what_uv_pip_refuses(stack, registered, args, env, said):
    work = registered.cwd
    (work / "pyproject.toml").write_text(UV_PROJECT.format(private=stack.private_url))
    argv = [a.format(public=stack.public_url) for a in args]
    env = {**registered.env, **{k: v.format(public=stack.public_url) for k, v in env.items()}}
    result = registered.run("uv", *argv, env=env)
    assert result.code == 3, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("crane: "), line
    assert said in line, line
    assert not (work / "uv.lock").exists()
    assert (work / "pyproject.toml").read_text() == UV_PROJECT.format(private=stack.private_url)


def _script(private: str, public: str) -> str:
    return (
        "# /// script\n"
        '# dependencies = ["decoy-pkg"]\n'
        "# [tool.uv]\n"
        f'# extra-index-url = ["{public}"]\n'
        "# [[tool.uv.index]]\n"
        '# name = "private"\n'
        f'# url = "{private}"\n'
        "# ///\n"
        "import decoy_pkg\n"
        "print(decoy_pkg.ORIGIN)\n"
    )


@pytest.mark.parametrize("how", ["uv pip -r", "uv run"])
def test_a_scripts_inline_settings_are_judged(stack, registered, how):
    script = registered.cwd / "s.py"
    script.write_text(_script(stack.private_url, stack.public_url))
    if how == "uv run":
        result = registered.run("uv", "run", "s.py")
    else:
        result = registered.run("uv", "pip", "install", "-i", stack.private_url, "-r", "s.py")
    assert result.code == 3, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "extra-index-url is not allowed under crane" in line, line
    assert str(script.name) in line, line
    assert result.stdout == ""


def test_uv_project_commands_read_the_system_settings_file(stack, registered, tmp_path):
    system = tmp_path / "xdg-system"
    (system / "uv").mkdir(parents=True)
    (system / "uv" / "uv.toml").write_text(f'extra-index-url = ["{stack.public_url}"]\n')
    (registered.cwd / "pyproject.toml").write_text(UV_PROJECT.format(private=stack.private_url))
    env = {**registered.env, "XDG_CONFIG_DIRS": str(system)}
    result = registered.run("uv", "lock", env=env)
    assert_rejected(
        result,
        f"{system / 'uv' / 'uv.toml'}: extra-index-url is not allowed under crane: "
        "projects could come from another index and bypass private-first routing",
    )


def test_the_site_config_of_the_pip_on_path_is_read(stack, registered, tmp_path):
    # Seen: the pip.conf of the virtual environment whose pip came first on PATH, with
    # VIRTUAL_ENV unset, added the public index as an extra index; the decoy came in.
    import subprocess
    import sys

    venv = tmp_path / "other-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (venv / "pip.conf").write_text(f"[global]\nextra-index-url = {stack.public_url}\n")
    env = {k: v for k, v in registered.env.items() if k not in ("PIP_CONFIG_FILE", "VIRTUAL_ENV")}
    env |= {"PATH": f"{venv / 'bin'}:{env['PATH']}", "HOME": str(tmp_path / "home")}
    result = registered.run("pip", "install", "-i", stack.private_url, "decoy-pkg", env=env)
    assert_rejected(
        result,
        f"pip config file {venv / 'pip.conf'}: [global]: extra-index-url is not allowed "
        f"under crane: {EXTRA_WHY}",
    )


def test_uv_pip_and_uv_project_commands_read_the_same_settings(stack, registered, tmp_path):
    # One model of uv's settings serves both planners: the same uv.toml (found through
    # UV_WORKING_DIRECTORY, which uv 0.13 honours) is refused for both, at the same place.
    project = tmp_path / "elsewhere"
    project.mkdir()
    (project / "pyproject.toml").write_text(UV_PROJECT.format(private=stack.private_url))
    (project / "uv.toml").write_text(f'extra-index-url = ["{stack.public_url}"]\n')
    env = {**registered.env, "UV_WORKING_DIRECTORY": str(project)}
    lines = []
    for args in (["pip", "install", "-i", stack.private_url, "x"], ["lock"]):
        result = registered.run("uv", *args, env=env)
        assert result.code == 3, (args, result.stderr)
        [line] = result.stderr.strip().splitlines()
        lines.append(line)
    for line in lines:
        assert str(project / "uv.toml") in line, line
        assert "extra-index-url is not allowed under crane" in line, line


@pytest.mark.parametrize("how", ["argv", "env"])
def test_a_private_default_index_replaced_on_a_project_command_is_refused(stack, registered, how):
    pyproject = UV_PROJECT.format(private=stack.private_url).replace(
        'url = "' + stack.private_url + '"', 'url = "' + stack.private_url + '"\ndefault = true'
    )
    (registered.cwd / "pyproject.toml").write_text(pyproject)
    env = dict(registered.env)
    args = ["lock"]
    if how == "argv":
        args.append(f"--default-index={stack.public_url}")
    else:
        env["UV_DEFAULT_INDEX"] = stack.public_url
    result = registered.run("uv", *args, env=env)
    assert result.code == 3, result.stderr
    assert f"replaces private index {stack.private_url} as the default index" in result.stderr
    assert not (registered.cwd / "uv.lock").exists()
