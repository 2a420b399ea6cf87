"""Planning `crane poetry ...`: which registered sources a poetry project uses, and the
warnings when its other sources could shadow them."""

from __future__ import annotations

from pathlib import Path

import pytest

from crane_launch.config import Registry
from crane_launch.errors import ConfigError
from crane_launch.launch.plan import TransparentDoorMode, Unchanged
from crane_launch.launch.poetry import plan_poetry
from tests.launch.fakefiles import Files
from tests.launch.projecttrees import (
    HOSTS,
    MIRROR,
    PRIVATE,
    PRIVATE_2,
    PUBLIC,
    private_hosts,
    private_urls,
    two_private_indexes,
    write_tree,
)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return two_private_indexes(tmp_path)


def _source(name: str, url: str | None = None, priority: str | None = None) -> str:
    lines = ["[[tool.poetry.source]]", f'name = "{name}"']
    if url:
        lines.append(f'url = "{url}"')
    if priority:
        lines.append(f'priority = "{priority}"')
    return "\n".join(lines) + "\n"


def _poetry_project(*sources: str) -> str:
    return '[project]\nname = "app"\nversion = "1.0"\n' + "".join(sources)


# --- poetry -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "argv", "cwd", "privates"),
    [
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", "https://private.example/simple"))},
            ["install"],
            ".",
            [PRIVATE],
            id="source-registered-any-spelling",
        ),
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", PUBLIC))},
            ["install"],
            ".",
            [],
            id="source-not-registered",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(
                    _source("one", PRIVATE_2),
                    _source("other", PUBLIC, "explicit"),
                    _source("two", PRIVATE),
                )
            },
            ["lock"],
            ".",
            [PRIVATE_2, PRIVATE],
            id="several-sources",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(),
                "poetry.lock": f"""
                    [[package]]
                    name = "corp-lib"
                    version = "1.0"
                    files = []

                    [package.source]
                    type = "legacy"
                    url = "{PRIVATE}"
                    reference = "corp"

                    [[package]]
                    name = "tool"
                    version = "2.0"
                    files = []

                    [package.source]
                    type = "git"
                    url = "{PRIVATE_2}"
                    reference = "main"
                """,
            },
            ["install"],
            ".",
            [PRIVATE],
            id="lock-file-legacy-source",
        ),
        pytest.param(
            {"pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["install"],
            "src/pkg",
            [PRIVATE],
            id="found-from-a-subdirectory",
        ),
        pytest.param(
            {"app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["-C", "app", "install"],
            ".",
            [PRIVATE],
            id="directory-short",
        ),
        pytest.param(
            {"app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["install", "--directory=app"],
            ".",
            [PRIVATE],
            id="directory-long-after-command",
        ),
        pytest.param(
            {"work/app/pyproject.toml": _poetry_project(_source("corp", PRIVATE))},
            ["--directory", "work", "-P", "app", "install"],
            ".",
            [PRIVATE],
            id="project-relative-to-directory",
        ),
        pytest.param(
            {
                "pyproject.toml": _poetry_project(_source("corp", PRIVATE)),
                "app/pyproject.toml": _poetry_project(),
            },
            ["run", "python", "-C", "app"],
            ".",
            [PRIVATE],
            id="run-arguments-belong-to-the-child",
        ),
    ],
)
def test_poetry_privates(
    tmp_path: Path,
    registry: Registry,
    *,
    files: dict[str, str],
    argv: list[str],
    cwd: str,
    privates: list[str],
) -> None:
    write_tree(tmp_path, files)
    (tmp_path / cwd).mkdir(parents=True, exist_ok=True)

    plan = plan_poetry(argv, registry=registry, environ={}, cwd=tmp_path / cwd)

    assert plan.command == ["poetry", *argv]
    assert private_urls(plan) == privates
    assert private_hosts(plan) == sorted({HOSTS[url] for url in privates})
    if not privates:
        assert plan.notes == ["no registered index in this project; running poetry unchanged"]


def test_poetry_without_a_project_runs_unchanged(tmp_path: Path, registry: Registry) -> None:
    plan = plan_poetry(["install"], registry=registry, environ={}, cwd=tmp_path)

    assert plan.command == ["poetry", "install"]
    assert plan.mode == Unchanged()
    assert plan.notes == [
        f"no pyproject.toml in {tmp_path} or its parents; running poetry unchanged"
    ]


@pytest.mark.parametrize(
    ("sources", "warnings"),
    [
        pytest.param(
            [_source("corp", PRIVATE), _source("public", PUBLIC)],
            [
                "poetry source 'public' (priority primary) could provide projects that also "
                f'exist on private index {PRIVATE}; pin them with `source = "corp"` or make '
                "the other source supplemental or explicit"
            ],
            id="two-primary-sources-merge",
        ),
        pytest.param(
            [_source("corp", PRIVATE, "supplemental")],
            [
                "poetry's implicit public index (priority primary, on because no source is "
                f"primary) could provide projects that also exist on private index {PRIVATE}; "
                "pin them with `source = \"corp\"` or make source 'corp' primary"
            ],
            id="implicit-public-index-before-supplemental",
        ),
        pytest.param(
            [_source("PyPI"), _source("corp", PRIVATE, "supplemental")],
            [
                "poetry source 'PyPI' (priority primary) could provide projects that also "
                f'exist on private index {PRIVATE}; pin them with `source = "corp"` or make '
                "the other source explicit"
            ],
            id="named-public-source-primary",
        ),
        pytest.param(
            [
                _source("corp-2", PRIVATE_2),
                _source("mirror", MIRROR, "supplemental"),
                _source("corp", PRIVATE, "supplemental"),
            ],
            [
                "poetry source 'mirror' (priority supplemental) could provide projects that "
                f'also exist on private index {PRIVATE}; pin them with `source = "corp"` or '
                "make the other source explicit"
            ],
            id="supplemental-declared-first",
        ),
        pytest.param(
            [_source("corp", PRIVATE), _source("public", PUBLIC, "supplemental")],
            [],
            id="public-supplemental-after-private-primary",
        ),
        pytest.param(
            [_source("corp", PRIVATE, "explicit"), _source("public", PUBLIC)],
            [],
            id="private-explicit-serves-pinned-only",
        ),
        pytest.param(
            [_source("corp", PRIVATE), _source("corp-2", PRIVATE_2)],
            [],
            id="all-primary-sources-private",
        ),
    ],
)
def test_poetry_shadowing_sources_are_refused(
    tmp_path: Path, registry: Registry, sources: list[str], warnings: list[str]
) -> None:
    write_tree(tmp_path, {"pyproject.toml": _poetry_project(*sources)})

    # A source order that lets another index provide a private project is refused, not
    # warned about: crane reaches only the private host, so private-first rests on it.
    if not warnings:
        plan_poetry(["lock"], registry=registry, environ={}, cwd=tmp_path)
        return
    with pytest.raises(ConfigError) as caught:
        plan_poetry(["lock"], registry=registry, environ={}, cwd=tmp_path)
    assert str(caught.value) == warnings[0]


@pytest.mark.parametrize("name", ["pyproject.toml", "poetry.lock"])
def test_poetry_malformed_toml_is_a_config_error(
    tmp_path: Path, registry: Registry, name: str
) -> None:
    write_tree(tmp_path, {"pyproject.toml": _poetry_project(), name: "[tool.poetry\nname = 1\n"})

    with pytest.raises(ConfigError) as caught:
        plan_poetry(["install"], registry=registry, environ={}, cwd=tmp_path)

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: is not valid TOML (")
    assert "\n" not in message


def test_poetry_reads_files_only_through_read_text(files: Files, registry: Registry) -> None:
    project = files.write("/srv/app/pyproject.toml", _poetry_project(_source("corp", PRIVATE)))
    files.write(
        "/srv/app/poetry.lock",
        f'[[package]]\nname = "lib"\n[package.source]\ntype = "legacy"\nurl = "{PRIVATE_2}"\n',
    )

    plan = plan_poetry(
        ["install"], registry=registry, environ={}, cwd=project.parent / "src", read_text=files
    )

    assert private_urls(plan) == [PRIVATE, PRIVATE_2]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(
            PermissionError(13, "Permission denied"),
            "cannot be read (Permission denied)",
            id="unreadable",
        ),
        pytest.param(
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            "is not UTF-8 text",
            id="not-utf-8",
        ),
    ],
)
def test_poetry_project_file_that_cannot_be_read_is_a_config_error(
    tmp_path: Path, registry: Registry, error: Exception, reason: str
) -> None:
    # Skipping it, as pip's config files are skipped, could hide a private source.
    def read_text(path: Path) -> str:
        raise error

    with pytest.raises(ConfigError) as caught:
        plan_poetry(["install"], registry=registry, environ={}, cwd=tmp_path, read_text=read_text)

    assert str(caught.value) == f"{tmp_path / 'pyproject.toml'}: {reason}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["add", "corp-lib", "--source", "pub"], [("corp-lib", PUBLIC, "index")]),
        (["add", "--source=pub", "Corp_Lib@^1.0", "-G", "dev"], [("corp-lib", PUBLIC, "index")]),
        (["add", "corp-lib"], []),
        (
            ["add", "https://h.example/corp_lib-1.0-py3-none-any.whl"],
            [("corp-lib", "https://h.example/corp_lib-1.0-py3-none-any.whl", "url")],
        ),
    ],
)
def test_poetry_add_arguments_are_references(
    tmp_path: Path, registry: Registry, argv: list[str], expected: list[tuple[str, str, str]]
) -> None:
    write_tree(
        tmp_path,
        {
            "pyproject.toml": _poetry_project(
                _source("corp", PRIVATE), _source("pub", PUBLIC, "explicit")
            )
        },
    )
    plan = plan_poetry(argv, registry=registry, environ={}, cwd=tmp_path)
    assert isinstance(plan.mode, TransparentDoorMode)
    found = [(r.project, r.url, r.kind) for r in plan.mode.direct_references]
    assert [f for f in found if f[0] == "corp-lib"] == expected
