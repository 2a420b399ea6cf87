from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from crane_launch.auth import TokenSet, TokenStore
from crane_launch.errors import AuthError, CorruptFileError, CraneError

URL = "https://pkgs.example.test/simple/"
NOW = 1_700_000_000.0


def sample(access: str = "acc-secret", refresh: str | None = "ref-secret") -> TokenSet:
    return TokenSet(
        access_token=access, expires_at=NOW + 300, obtained_at=NOW, refresh_token=refresh
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_default_directory_is_under_crane_home(crane_home: Path) -> None:
    assert TokenStore().directory == crane_home / "state" / "tokens"


def test_round_trip_and_permissions(store: TokenStore) -> None:
    assert store.load(URL) is None
    store.save(URL, sample())
    assert store.load(URL) == sample()
    path = store.path_for(URL)
    assert path.parent == store.directory
    assert mode(path) == 0o600
    assert mode(store.directory) == 0o700
    document = json.loads(path.read_text())
    assert document["index_url"] == URL
    assert document["version"] == 1
    assert document["refresh_token"] == "ref-secret"


def test_every_spelling_of_a_url_shares_one_file(store: TokenStore) -> None:
    path = store.path_for(URL)
    assert store.path_for("HTTPS://PKGS.example.test:443/simple") == path
    assert store.path_for("https://pkgs.example.test/other/") != path
    assert path.name.startswith("pkgs-example-test-simple-")
    assert path.suffix == ".json"


def test_a_lax_directory_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir()
    os.chmod(directory, 0o755)  # noqa: S103 - the lax directory under test
    TokenStore(directory).save(URL, sample())
    assert mode(directory) == 0o700


def test_failed_replace_leaves_the_old_file(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(URL, sample("old"))
    before = store.path_for(URL).read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(CraneError, match="cannot be written"):
        store.save(URL, sample("new"))
    monkeypatch.undo()
    assert store.path_for(URL).read_bytes() == before
    assert [p.name for p in store.directory.iterdir() if p.name.endswith(".tmp")] == []
    assert store.load(URL) == sample("old")


def test_failed_serialisation_leaves_the_old_file(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save(URL, sample("old"))
    before = store.path_for(URL).read_bytes()

    def broken_dumps(*args: object, **kwargs: object) -> str:
        raise ValueError("boom")

    monkeypatch.setattr(json, "dumps", broken_dumps)
    with pytest.raises(ValueError, match="boom"):
        store.save(URL, sample("new"))
    monkeypatch.undo()
    assert store.path_for(URL).read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"version": 1, "index_url": "https://pkgs.example.test/simple/"}',
        b'{"version": 1, "index_url": "https://other.example.test/"}',
        b'{"version": 99, "index_url": "https://pkgs.example.test/simple/"}',
        b'{"version": 1, "index_url": "https://pkgs.example.test/simple/",'
        b' "access_token": "acc-secret", "expires_at": "soon"}',
    ],
)
def test_a_corrupt_file_is_an_error_naming_it_and_stays_untouched(
    store: TokenStore, content: bytes
) -> None:
    path = store.path_for(URL)
    path.parent.mkdir(parents=True, mode=0o700)
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(CorruptFileError) as info:
        store.load(URL)
    assert str(path) in str(info.value)
    assert info.value.path == path
    assert "acc-secret" not in str(info.value)
    assert path.read_bytes() == content


def test_a_file_others_can_read_is_refused(store: TokenStore) -> None:
    store.save(URL, sample())
    path = store.path_for(URL)
    os.chmod(path, 0o644)
    with pytest.raises(CorruptFileError, match="chmod 600") as info:
        store.load(URL)
    assert str(path) in str(info.value)
    assert store.load(URL, allow_insecure=True) == sample()
    os.chmod(path, 0o600)
    assert store.load(URL) == sample()


def test_delete(store: TokenStore) -> None:
    assert store.delete(URL) is False
    store.save(URL, sample())
    assert store.delete(URL) is True
    assert store.load(URL) is None


def test_lock_serialises_and_times_out(crane_home: Path) -> None:
    holder = TokenStore()
    waiter = TokenStore(lock_timeout=0.1)
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder.lock(URL):
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert entered.wait(5)
        with pytest.raises(AuthError, match="another crane process"), waiter.lock(URL):
            pass
    finally:
        release.set()
        thread.join()
    with waiter.lock(URL):
        pass
    lock_file = holder.path_for(URL).with_suffix(".lock")
    assert lock_file.parent == holder.directory
