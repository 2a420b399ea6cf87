"""The guard (design section 10) end to end: real pip, uv and poetry, real IdP and indexes.

Each test hands the tool a way to the public decoy (``decoy-pkg 99.0``): a direct URL in a
requirements or constraints file or a pyproject.toml (refused before the tool starts,
naming the place), one the tool only meets while it runs (a local find-links page, a
dependency of a local wheel: refused by the guard, a ``crane: guard: refused ...`` line
naming the URL and the project), or a tampered lock file (refused before the tool starts).
Every refusal is exit 3, and the decoy is not installed. Public-only projects keep
installing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from harness import uv_env

DECOY_LINE = "decoy-pkg is a project of private index"


@pytest.fixture
def logged_in(stack, crane):
    crane.register(stack, None, "--public-index", stack.public_url)
    assert crane.login(stack).code == 0
    stack.gate.reset()
    yield crane
    stack.gate.reset()


def public_file(stack, filename: str) -> str:
    return stack.public_url.removesuffix("simple/") + "packages/" + filename


def decoy_url(stack) -> str:
    return public_file(stack, "decoy_pkg-99.0-py3-none-any.whl")


def assert_refused(result, url: str) -> None:
    """Refused by the guard while the tool ran."""
    assert result.code == 3, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("crane: guard:")]
    assert lines, result.stderr
    assert any(url in line and DECOY_LINE in line for line in lines), lines


def assert_reference_refused(result, place: str, stack) -> None:
    """Refused before the tool started: a requirement that points a private project
    elsewhere, named by where it was written."""
    assert result.code == 3, result.stdout + result.stderr
    [line] = [line for line in result.stderr.splitlines() if "would come from" in line]
    assert line.startswith(f"crane: {place}: decoy-pkg would come from "), line
    assert f"a project of private index {stack.private_url}" in line, line


def installed(target: Path) -> set[str]:
    return {p.name.split("-")[0] for p in target.glob("*.dist-info")} if target.exists() else set()


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_direct_url_in_a_requirements_file_is_refused(stack, logged_in, tmp_path, tool):
    (logged_in.cwd / "requirements.txt").write_text(f"decoy-pkg @ {decoy_url(stack)}\n")
    target = tmp_path / "target"
    args = ["install", "--target", str(target), "-i", stack.private_url, "-r", "requirements.txt"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args)
    assert_reference_refused(result, "requirements file requirements.txt line 1", stack)
    assert "decoy_pkg" not in installed(target)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_direct_url_on_the_command_line_is_refused(stack, logged_in, tmp_path, tool):
    target = tmp_path / "target"
    opaque = public_file(stack, "anything-1.0.tar.gz")  # the name a URL shows proves nothing
    args = ["install", "--target", str(target), "-i", stack.private_url, f"Decoy_Pkg @ {opaque}"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args)
    assert_reference_refused(result, "command line", stack)


def test_a_git_reference_is_refused_before_it_is_cloned(stack, logged_in, tmp_path):
    # git:// never passes an HTTP proxy: only the reference itself can be judged.
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url,
        "decoy-pkg @ git+git://127.0.0.1:9/decoy.git",
    )  # fmt: skip
    assert_reference_refused(result, "command line", stack)


def test_a_dependency_met_only_while_pip_runs_is_refused_by_the_guard(stack, logged_in, tmp_path):
    from stack import wheels

    # A local wheel (the user's own file, not judged) whose metadata pulls the decoy in
    # by URL: crane sees it only when pip fetches it.
    local = wheels.build_wheel(
        tmp_path / "local", "innocent-lib", "1.0", [f"decoy-pkg @ {decoy_url(stack)}"]
    )
    target = tmp_path / "target"
    result = logged_in.run(
        "pip", "install", "--target", str(target), "-i", stack.private_url, str(local)
    )
    assert_refused(result, decoy_url(stack))
    assert "decoy_pkg" not in installed(target)


def test_a_direct_url_constraint_is_refused_for_uv(stack, logged_in, tmp_path):
    # The user typed only `decoy-pkg`; the constraints file points it at the public decoy.
    (logged_in.cwd / "c.txt").write_text(f"decoy-pkg @ {decoy_url(stack)}\n")
    target = tmp_path / "target"
    result = logged_in.run(
        "uv", "pip", "install", "--target", str(target), "-i", stack.private_url,
        "-c", "c.txt", "decoy-pkg",
        env=uv_env(logged_in.env),
    )  # fmt: skip
    assert_reference_refused(result, "requirements file c.txt line 1", stack)
    assert "decoy_pkg" not in installed(target)


@pytest.mark.parametrize("where", ["command line", "requirements file"])
def test_a_local_find_links_page_is_refused(stack, logged_in, tmp_path, where):
    # pip parses a local HTML file like a remote page and follows its links anywhere.
    page = logged_in.cwd / "links.html"
    page.write_text(f'<a href="{decoy_url(stack)}">decoy_pkg-99.0-py3-none-any.whl</a>\n')
    target = tmp_path / "target"
    args = ["install", "--target", str(target), "-i", stack.private_url]
    if where == "command line":
        args += ["-f", str(page), "decoy-pkg"]
        place = f"command line: --find-links {page}"
    else:
        (logged_in.cwd / "r.txt").write_text("--find-links links.html\ndecoy-pkg\n")
        args += ["-r", "r.txt"]
        place = "requirements file r.txt line 1: --find-links links.html"
    result = logged_in.run("pip", *args)
    assert result.code == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"crane: {place} is not allowed under crane: a find-links page (remote, or a local "
        "HTML file) is an index in disguise and could shadow private projects; use a local "
        "directory, or publish the files to the private index"
    ]
    assert "decoy_pkg" not in installed(target)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_public_only_project_still_comes_from_a_direct_url(stack, logged_in, tmp_path, tool):
    url = public_file(stack, "public_only_dep-1.0-py3-none-any.whl")
    (logged_in.cwd / "requirements.txt").write_text(f"public-only-dep @ {url}\n")
    target = tmp_path / "target"
    args = ["install", "--target", str(target), "-i", stack.private_url, "-r", "requirements.txt"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args)
    assert result.code == 0, result.stderr
    assert "crane: guard:" not in result.stderr
    assert "public_only_dep" in installed(target)


UV_PROJECT = """\
[project]
name = "demo-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["crane-private-app", "decoy-pkg"]

[tool.uv]
package = false

[[tool.uv.index]]
name = "private"
url = "{private}"

[[tool.uv.index]]
name = "public"
url = "{public}"
default = true
"""


@pytest.mark.parametrize(
    "source",
    [
        'decoy-pkg = {{ url = "{decoy}" }}',
        'decoy-pkg = {{ git = "https://127.0.0.1:9/decoy.git" }}',
        'decoy-pkg = {{ index = "public" }}',
    ],
    ids=["url", "git", "index"],
)
def test_a_uv_sources_pin_elsewhere_is_refused(stack, logged_in, source):
    work = logged_in.cwd
    pin = source.format(decoy=decoy_url(stack))
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url)
        + f"\n[tool.uv.sources]\n{pin}\n"
    )
    for args in (["lock"], ["sync"]):
        result = logged_in.run("uv", *args, env=uv_env(logged_in.env), timeout=300)
        place = f"{work / 'pyproject.toml'} [tool.uv.sources]"
        assert_reference_refused(result, place, stack)
        assert not (work / "uv.lock").exists()


def test_a_poetry_dependency_pinned_elsewhere_is_refused(stack, logged_in):
    work = logged_in.cwd
    env = {**logged_in.env, "POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    (work / "pyproject.toml").write_text(
        POETRY_PROJECT.format(private=stack.private_url, public=stack.public_url)
        + "\n[tool.poetry.group.dev.dependencies]\n"
        + 'decoy-pkg = { version = "*", source = "public" }\n'
    )
    result = logged_in.run("poetry", "lock", env=env, timeout=300)
    place = f"{work / 'pyproject.toml'} [tool.poetry.group.dev.dependencies]"
    assert_reference_refused(result, place, stack)
    assert not (work / "poetry.lock").exists()


def test_a_tampered_uv_lock_is_refused_before_uv_runs(stack, logged_in, tmp_path):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    env = uv_env(logged_in.env)
    locked = logged_in.run("uv", "lock", env=env, timeout=300)
    assert locked.code == 0, locked.stderr
    lock = work / "uv.lock"
    text = lock.read_text()
    # The decoy's entry says "private registry" but its wheel is the public one.
    start = text.index('name = "decoy-pkg"')
    end = text.index("[[package]]", start)
    entry = text[start:end]
    private_wheel = entry.split('wheels = [\n    { url = "', 1)[1].split('"', 1)[0]
    tampered = text[:start] + entry.replace(private_wheel, decoy_url(stack)) + text[end:]
    lock.write_text(tampered)

    venv = tmp_path / "venv"
    for args in (["sync", "--frozen"], ["sync", "--locked"], ["sync"]):
        result = logged_in.run(
            "uv", *args, env={**env, "UV_PROJECT_ENVIRONMENT": str(venv)}, timeout=300
        )
        assert result.code == 3, (args, result.stderr)
        assert "uv.lock:" in result.stderr, result.stderr
        assert "decoy-pkg" in result.stderr, result.stderr
        assert not venv.exists(), args  # uv never ran
    assert lock.read_text() == tampered


POETRY_PROJECT = """\
[project]
name = "demo-app"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["crane-private-app", "decoy-pkg"]

[tool.poetry]
package-mode = false

[[tool.poetry.source]]
name = "private"
url = "{private}"
priority = "primary"

[[tool.poetry.source]]
name = "public"
url = "{public}"
priority = "supplemental"
"""


def test_a_poetry_lock_whose_reference_names_the_public_source_is_refused(stack, logged_in):
    work = logged_in.cwd
    env = {**logged_in.env, "POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    (work / "pyproject.toml").write_text(
        POETRY_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    locked = logged_in.run("poetry", "lock", env=env, timeout=300)
    assert locked.code == 0, locked.stdout + locked.stderr
    lock = work / "poetry.lock"
    text = lock.read_text()
    start = text.index('name = "decoy-pkg"')
    end = text.index("[[package]]", start) if "[[package]]" in text[start:] else len(text)
    entry = text[start:end].replace('reference = "private"', 'reference = "public"')
    lock.write_text(text[:start] + entry + text[end:])

    result = logged_in.run("poetry", "install", env=env, timeout=300)
    assert result.code == 3, result.stdout + result.stderr
    assert "poetry.lock:" in result.stderr, result.stderr
    assert "decoy-pkg" in result.stderr, result.stderr
    assert not list(work.glob(".venv/lib/*/site-packages/decoy_pkg*"))  # poetry never ran


def test_a_uv_project_that_searches_every_index_is_refused(stack, logged_in):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url).replace(
            "package = false", 'package = false\nindex-strategy = "unsafe-best-match"'
        )
    )
    result = logged_in.run("uv", "lock", env=uv_env(logged_in.env), timeout=300)
    assert result.code == 3, result.stderr
    assert "uv index-strategy 'unsafe-best-match'" in result.stderr
    assert not (work / "uv.lock").exists()


def test_a_child_of_a_project_command_meets_the_guard(stack, logged_in, tmp_path):
    # `uv run` runs any command; crane does not read that command's arguments. Here it is
    # pip, told to install the decoy from the public index: the guard refuses its page.
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    public = stack.public_url.replace("127.0.0.1", "localhost")  # not a loopback IP literal
    result = logged_in.run(
        "uv", "run", "--no-project", "python", "-m", "pip", "install", "--no-cache-dir",
        "--target", str(tmp_path / "t"), "-i", public, "decoy-pkg",
        env=uv_env(logged_in.env), timeout=300,
    )  # fmt: skip
    assert_refused(result, public + "decoy-pkg/")
    assert "decoy_pkg" not in installed(tmp_path / "t")


def test_a_poetry_project_with_the_public_source_primary_is_refused(stack, logged_in):
    work = logged_in.cwd
    env = {**logged_in.env, "POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    (work / "pyproject.toml").write_text(
        POETRY_PROJECT.format(private=stack.private_url, public=stack.public_url).replace(
            'priority = "supplemental"', 'priority = "primary"'
        )
    )
    result = logged_in.run("poetry", "lock", env=env, timeout=300)
    assert result.code == 3, result.stderr
    assert "poetry source 'public'" in result.stderr, result.stderr
    assert not (work / "poetry.lock").exists()


# -- every place a requirement can name a location, found by attackers' reviews ------------


def test_a_nameless_remote_requirement_must_say_its_name(stack, logged_in, tmp_path):
    result = logged_in.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        "git+http://127.0.0.1:9/repo.git",
    )  # fmt: skip
    assert result.code == 3, result.stderr
    assert "does not say which project it is; write it as `name @ " in result.stderr


def test_an_editable_vcs_line_naming_the_project_is_refused(stack, logged_in, tmp_path):
    (logged_in.cwd / "r.txt").write_text("-e git+http://127.0.0.1:9/repo.git#egg=decoy-pkg\n")
    result = logged_in.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "-r", "r.txt"
    )
    assert_reference_refused(result, "requirements file r.txt line 1", stack)


def test_a_url_whose_host_parsers_disagree_on_is_not_the_private_index(stack, logged_in, tmp_path):
    private = stack.private_url.split("//", 1)[1].split("/", 1)[0]
    # pip and uv connect to the host before the backslash; Python's parser reads the one
    # after the `@`: crane must not take such a URL for the private index.
    public = stack.public_url.split("//", 1)[1].split("/", 1)[0]
    url = f"http://{public}\\@{private}/packages/decoy_pkg-99.0-py3-none-any.whl"
    result = logged_in.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        f"decoy-pkg @ {url}",
    )  # fmt: skip
    assert_reference_refused(result, "command line", stack)


def test_uv_run_with_a_url_requirement_is_refused(stack, logged_in):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    result = logged_in.run(
        "uv", "run", "--with", f"decoy-pkg @ {decoy_url(stack)}", "python", "-c", "pass",
        env=uv_env(logged_in.env), timeout=300,
    )  # fmt: skip
    assert_reference_refused(result, "command line", stack)


def test_uv_override_dependencies_are_read_before_uv_runs(stack, logged_in):
    work = logged_in.cwd
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url).replace(
            "package = false",
            f'package = false\noverride-dependencies = ["decoy-pkg @ {decoy_url(stack)}"]',
        )
    )
    result = logged_in.run("uv", "sync", env=uv_env(logged_in.env), timeout=300)
    place = f"{work / 'pyproject.toml'} [tool.uv] override-dependencies"
    assert_reference_refused(result, place, stack)
    assert not (work / ".venv").exists()


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_local_project_that_pulls_the_decoy_by_url_is_refused(stack, logged_in, tmp_path, tool):
    project = logged_in.cwd / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "proj"\nversion = "1.0"\n'
        f'dependencies = ["decoy-pkg @ {decoy_url(stack)}"]\n'
    )
    args = ["install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "./proj"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args)
    assert_reference_refused(result, f"{project / 'pyproject.toml'} [project] dependencies", stack)


def test_poetry_add_of_a_url_is_refused(stack, logged_in):
    work = logged_in.cwd
    env = {**logged_in.env, "POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    (work / "pyproject.toml").write_text(
        POETRY_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    before = (work / "pyproject.toml").read_text()
    result = logged_in.run("poetry", "add", f"decoy-pkg @ {decoy_url(stack)}", env=env)
    assert_reference_refused(result, "command line", stack)
    assert (work / "pyproject.toml").read_text() == before


# -- git dependencies keep working with the guard in place ----------------------------------

BACKEND = """
import os, shutil
HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = "gitdep-1.0-py3-none-any.whl"
def get_requires_for_build_wheel(config_settings=None):
    return []
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    shutil.copy(os.path.join(HERE, "payload.whl"), os.path.join(wheel_directory, WHEEL))
    return WHEEL
"""


@pytest.fixture
def git_server(tmp_path):
    """A bare git repository of project `gitdep` served over dumb HTTP at `localhost`
    (not a loopback IP literal: children reach it through crane's guard)."""
    import http.server
    import shutil
    import subprocess
    import threading

    from stack import wheels

    git = shutil.which("git")
    assert git is not None, "git is needed (README: what the machine needs beforehand)"
    source = tmp_path / "gitsrc"
    source.mkdir()
    built = wheels.build_wheel(tmp_path / "w", "gitdep", "1.0", origin="git")
    (source / "payload.whl").write_bytes(built.read_bytes())
    (source / "_backend.py").write_text(BACKEND)
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "_backend"\nbackend-path = ["."]\n'
    )
    who = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    who |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env = {**who, "HOME": str(tmp_path), "PATH": str(Path(git).parent)}

    def run(*args, cwd=source):
        subprocess.run([git, *args], cwd=cwd, env=env, check=True, capture_output=True)

    run("init", "-q", "-b", "main")
    run("add", ".")
    run("commit", "-qm", "gitdep 1.0")
    served = tmp_path / "served"
    served.mkdir()
    run("clone", "-q", "--bare", str(source), str(served / "repo.git"), cwd=tmp_path)
    run("update-server-info", cwd=served / "repo.git")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/repo.git"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_git_dependency_of_a_public_project_installs_through_the_guard(
    stack, logged_in, tmp_path, git_server, tool
):
    target = tmp_path / "target"
    args = [
        "install",
        "--target",
        str(target),
        "-i",
        stack.private_url,
        f"gitdep @ git+{git_server}",
    ]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, env=uv_env(logged_in.env), timeout=300)
    else:
        result = logged_in.run("pip", *args, timeout=300)
    assert result.code == 0, result.stdout + result.stderr
    assert "crane: guard:" not in result.stderr
    assert "gitdep" in installed(target)


@pytest.mark.parametrize(
    "args", [["decoy-pkg", "--source", "public"], ["--source=public", "decoy-pkg@^1.0"]]
)
def test_poetry_add_pinned_to_another_source_is_refused(stack, logged_in, args):
    work = logged_in.cwd
    env = {**logged_in.env, "POETRY_VIRTUALENVS_IN_PROJECT": "true"}
    (work / "pyproject.toml").write_text(
        POETRY_PROJECT.format(private=stack.private_url, public=stack.public_url)
    )
    before = (work / "pyproject.toml").read_text()
    result = logged_in.run("poetry", "add", *args, env=env)
    assert_reference_refused(result, "command line --source public", stack)
    assert (work / "pyproject.toml").read_text() == before


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_local_find_links_directory_with_a_private_project_is_refused(
    stack, logged_in, tmp_path, tool
):
    # The guard sees no local file: the directory is looked at before the tool runs.
    import shutil

    wheels = logged_in.cwd / "wheels"
    wheels.mkdir()
    shutil.copy(stack.public_dir / "decoy_pkg-99.0-py3-none-any.whl", wheels)
    shutil.copy(stack.public_dir / "public_only_dep-1.0-py3-none-any.whl", wheels)
    args = ["install", "--target", str(tmp_path / "t"), "-i", stack.private_url, "-f", "wheels"]
    if tool == "uv":
        result = logged_in.run("uv", "pip", *args, "decoy-pkg", env=uv_env(logged_in.env))
    else:
        result = logged_in.run("pip", *args, "decoy-pkg")
    assert result.code == 3, result.stderr
    assert (
        f"crane: find-links location {wheels} holds decoy_pkg-99.0-py3-none-any.whl, a file "
        f"of decoy-pkg, a project of private index {stack.private_url}"
    ) in result.stderr
    assert "decoy_pkg" not in installed(tmp_path / "t")


def test_a_local_find_links_directory_of_public_projects_is_fine(stack, logged_in, tmp_path):
    import shutil

    wheels = logged_in.cwd / "wheels"
    wheels.mkdir()
    shutil.copy(stack.public_dir / "public_only_dep-1.0-py3-none-any.whl", wheels)
    result = logged_in.run(
        "pip", "install", "--target", str(tmp_path / "t"), "-i", stack.private_url,
        "-f", "wheels", "public-only-dep",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "public_only_dep" in installed(tmp_path / "t")


def test_a_project_commands_local_find_links_with_a_private_project_is_refused(stack, logged_in):
    import shutil

    work = logged_in.cwd
    (work / "links").mkdir()
    shutil.copy(stack.public_dir / "decoy_pkg-99.0-py3-none-any.whl", work / "links")
    (work / "pyproject.toml").write_text(
        UV_PROJECT.format(private=stack.private_url, public=stack.public_url).replace(
            "package = false", 'package = false\nfind-links = ["./links"]'
        )
    )
    result = logged_in.run("uv", "sync", env=uv_env(logged_in.env), timeout=300)
    assert result.code == 3, result.stderr
    assert "holds decoy_pkg-99.0-py3-none-any.whl, a file of decoy-pkg" in result.stderr
    assert not (work / ".venv").exists()


def test_a_script_is_found_behind_uv_runs_value_options(stack, logged_in):
    script = logged_in.cwd / "s.py"
    script.write_text(
        '# /// script\n# dependencies = ["decoy-pkg"]\n# [[tool.uv.index]]\n'
        f'# name = "mirror"\n# url = "{stack.public_url}"\n# [[tool.uv.index]]\n'
        f'# name = "private"\n# url = "{stack.private_url}"\n# ///\n'
        "import decoy_pkg\nprint(decoy_pkg.ORIGIN)\n"
    )
    python = str(Path(sys.executable))
    result = logged_in.run("uv", "run", "--python", python, "s.py", env=uv_env(logged_in.env))
    assert result.code == 3, result.stdout + result.stderr
    assert "uv index 'mirror' is consulted before private index" in result.stderr
    assert "public" not in result.stdout


def test_the_site_config_of_a_symlinked_pip_is_read(stack, logged_in, tmp_path):
    import subprocess

    venv = tmp_path / "venv2"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (venv / "pip.conf").write_text(f"[global]\nextra-index-url = {stack.public_url}\n")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "pip").symlink_to(venv / "bin" / "pip")
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    env = {k: v for k, v in logged_in.env.items() if k != "VIRTUAL_ENV"}
    env |= {"PATH": f"{shim}:{env['PATH']}", "PIP_CONFIG_FILE": str(empty)}
    result = logged_in.run("pip", "install", "-i", stack.private_url, "decoy-pkg", env=env)
    assert result.code == 3, result.stderr
    assert f"pip config file {venv / 'pip.conf'}: [global]: extra-index-url" in result.stderr
