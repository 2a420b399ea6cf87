"""The index registry on disk: URL spelling, atomic writes, and files crane cannot use."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from crane_launch.config import (
    Origin,
    PrivateIndex,
    Registry,
    atomic_write_text,
    normalise_url,
    origin_of,
    origin_url,
)
from crane_launch.errors import CorruptFileError, UnknownIndexError, UsageError

URL = "https://pkgs.example.test/simple/"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def entry(url: str = URL, **fields: object) -> PrivateIndex:
    return PrivateIndex(
        url=url,
        client_id="crane",
        token_url="https://idp.example.test/token",
        device_url="https://idp.example.test/device",
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def crane_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    return home


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HTTPS://Host.Example:443/simple", "https://host.example/simple/"),
        ("https://host.example/simple/", "https://host.example/simple/"),
        ("http://host.example:80", "http://host.example/"),
        ("https://host.example:8443//a//simple", "https://host.example:8443/a/simple/"),
        ("http://host.example:443/simple", "http://host.example:443/simple/"),
        ("  https://host.example/simple  ", "https://host.example/simple/"),
        ("https://[::1]:8080/simple", "https://[::1]:8080/simple/"),
    ],
)
def test_every_spelling_of_an_index_url_is_one_index(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("ftp://host.example/simple/", "is not an http:// or https:// URL"),
        ("host.example/simple/", "is not an http:// or https:// URL"),
        ("https:///simple/", "has no host"),
        ("https://user:secret@host.example/simple/", "must not carry credentials"),
        ("https://token@host.example/simple/", "must not carry credentials"),
        ("https://host.example/simple/?x=1", "no query or fragment"),
        ("https://host.example/simple/#top", "no query or fragment"),
        ("https://host.example:99999/simple/", "out of range"),
    ],
)
def test_what_cannot_be_an_index_url_is_a_usage_error(given: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem) as caught:
        normalise_url(given)
    assert "secret" not in str(caught.value)


# -- the registry -------------------------------------------------------------------------


def test_the_registry_lives_under_crane_home(crane_home: Path) -> None:
    assert Registry.default_path() == crane_home / "config" / "indexes.json"
    assert len(Registry.load()) == 0  # no file yet: an empty registry, nothing written
    assert not (crane_home / "config").exists()


def test_a_saved_registry_is_private_and_finds_any_spelling(crane_home: Path) -> None:
    registry = Registry.load()
    registry.put(entry("HTTPS://PKGS.example.test:443/simple"))
    registry.save()

    path = Registry.default_path()
    assert mode(path) == 0o600
    again = Registry.load()
    assert [index.url for index in again] == [URL]
    assert again.get("https://pkgs.example.test/simple") == entry()


def test_fields_from_a_newer_crane_survive_a_save(crane_home: Path) -> None:
    path = Registry.default_path()
    path.parent.mkdir(parents=True)
    document = {"version": 1, "indexes": [{**entry().to_json(), "future_field": [1, 2]}]}
    path.write_text(json.dumps(document))

    registry = Registry.load()
    registry.save()

    assert json.loads(path.read_text())["indexes"][0]["future_field"] == [1, 2]


def test_an_unknown_url_suggests_the_closest_registered_one(crane_home: Path) -> None:
    registry = Registry(Registry.default_path())
    registry.put(entry())
    with pytest.raises(UnknownIndexError) as caught:
        registry.get("https://pkgs.example.test/simpel/")
    assert caught.value.suggestion == URL
    assert f"did you mean {URL}?" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        b"garbage",
        b"",
        b"\xff\xfe\x00not utf-8",
        b"[]",
        b'{"version": 1}',
        b'{"indexes": [1]}',
        b'{"indexes": [{"url": "https://x.example/"}]}',
        b'{"indexes": [{"url": 5, "client_id": "a", "token_url": "b", "device_url": "c"}]}',
        b'{"indexes": [{"url": "ftp://x/", "client_id": "a", "token_url": "b", '
        b'"device_url": "c"}]}',
    ],
)
def test_a_corrupt_registry_names_its_path_and_is_left_alone(
    crane_home: Path, content: bytes
) -> None:
    path = Registry.default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(content)

    with pytest.raises(CorruptFileError) as caught:
        Registry.load()

    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 3
    assert path.read_bytes() == content


def test_a_registry_that_cannot_be_read_is_reported_by_path(crane_home: Path) -> None:
    path = Registry.default_path()
    path.mkdir(parents=True)  # a directory where the file should be: reading fails
    with pytest.raises(CorruptFileError, match="cannot be read") as caught:
        Registry.load()
    assert str(path) in str(caught.value)


def test_a_registry_crane_may_not_read_is_reported_by_path(
    crane_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Registry.default_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "indexes": []}')
    read_bytes = Path.read_bytes

    def denied(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    # What a mode 000 file gives a user who is not root (root reads everything).
    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(CorruptFileError) as caught:
        Registry.load()
    message = f"{path}: cannot be read (Permission denied); fix or remove the file"
    assert str(caught.value) == message


# -- atomic writes ------------------------------------------------------------------------


def test_atomic_write_creates_a_private_file_in_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "tokens.json"
    atomic_write_text(path, "secret")
    assert path.read_text() == "secret"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_atomic_write_tightens_a_file_that_was_readable(tmp_path: Path) -> None:
    path = tmp_path / "indexes.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert mode(path) == 0o600


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "indexes.json"
    path.write_text("old")

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new")

    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["indexes.json"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://index.example/simple/", "https://index.example"),
        ("https://index.example:443/simple/", "https://index.example"),
        ("http://index.example:8080/simple/", "http://index.example:8080"),
        ("http://[::1]:8080/simple/", "http://[::1]:8080"),
        ("https://[::1]/simple/", "https://[::1]"),
    ],
)
def test_origin_url_spells_an_origin_back(url: str, expected: str) -> None:
    assert origin_url(origin_of(url)) == expected


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Index.Example/simple/", Origin("https", "index.example", 443)),
        ("HTTPS://index.example:0443/simple/", Origin("https", "index.example", 443)),
        ("http://index.example/x", Origin("http", "index.example", 80)),
        ("http://[::1]:8080/simple/", Origin("http", "::1", 8080)),
        ("//index.example/x", Origin("", "index.example", 0)),
    ],
)
def test_origin_of_lowers_the_names_and_fills_in_the_default_port(url: str, origin: Origin) -> None:
    assert origin_of(url) == origin
    assert origin_of(url).host == origin.host


def test_origin_of_refuses_a_port_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"."):
        origin_of("https://index.example:99999/")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@login.example/authorize?state=s3cret#f", "https://login.example/authorize"),
        ("http://127.0.0.1:8080/simple/", "http://127.0.0.1:8080/simple/"),
        ("relative/path?q=1", "relative/path?q=1"),
    ],
)
def test_shown_url_drops_what_may_carry_a_secret(url: str, shown: str) -> None:
    from crane_launch.config import shown_url

    assert shown_url(url) == shown
