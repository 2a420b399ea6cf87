"""`TokenStore`: one token file per index under the state dir, and the lock beside it.

Layout (`<state dir>/tokens/`, mode 0700)::

    <slug>-<hash>.json     {"version": 1, "index_url": ..., <TokenSet.to_json()>}  mode 0600
    <slug>-<hash>.lock     the cross-process lock for that index (filelock)
    <slug>-<hash>.password.json   {"version": 1, "index_url": ..., "password": ...}  0600
                           (HTTP Basic indexes registered without --password-env)

`hash` is the start of the SHA-256 of the normalised index URL, so every spelling of a URL
finds the same file; `slug` only makes the directory readable. The file records the URL it
belongs to and is refused if that does not match.

A token file that cannot be used is a `CorruptFileError` naming the file, and the file is
left exactly as it was: losing a refresh token silently would force a login, and a user
may want to inspect the file. So is a token file that other users can read (or write):
its tokens may have leaked, and the fix (`chmod 600`, or `crane logout` to revoke) is the
user's decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import filelock

from crane_launch.config import atomic_write_text, normalise_url, state_dir
from crane_launch.errors import AuthError, ConfigError, CorruptFileError, CraneError

from ._tokens import TokenSet

__all__ = ["DEFAULT_LOCK_TIMEOUT", "TokenStore"]

DEFAULT_LOCK_TIMEOUT = 60.0
_FORMAT_VERSION = 1
_POSIX = os.name == "posix"


def _slug(url: str) -> str:
    rest = url.split("://", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", rest.lower()).strip("-")
    return slug[:48].rstrip("-") or "index"


class TokenStore:
    """Tokens by index URL. Every method normalises the URL it is given.

    Reading and writing are each atomic; a read-modify-write that must not interleave with
    another process (a refresh) runs inside `with store.lock(url):`.
    """

    def __init__(
        self, directory: Path | None = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        self.directory = directory if directory is not None else state_dir() / "tokens"
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"TokenStore({str(self.directory)!r})"

    def path_for(self, url: str) -> Path:
        """The token file for `url` (which need not exist). `UsageError` for a bad URL."""
        key = normalise_url(url)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        return self.directory / f"{_slug(key)}-{digest}.json"

    def password_path_for(self, url: str) -> Path:
        """The file of the stored HTTP Basic password for `url` (which need not exist)."""
        path = self.path_for(url)
        return path.with_name(path.stem + ".password.json")

    def _read(self, path: Path, key: str, allow_insecure: bool) -> dict[str, Any] | None:
        """The JSON document at `path`, checked to be crane's and `key`'s; None if absent."""
        try:
            with path.open("rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if _POSIX and mode & 0o077 and not allow_insecure:
                    raise CorruptFileError(
                        path,
                        f"is accessible to other users (mode {stat.filemode(mode)}), so its "
                        f"secrets may have leaked; run `chmod 600 {path}` to keep them, or "
                        f"`crane logout {key}` to remove them",
                    )
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptFileError(path, f"cannot be read ({exc.strerror or exc})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            version = data.get("version")
            if version != _FORMAT_VERSION:
                if isinstance(version, int) and version > _FORMAT_VERSION:
                    raise ValueError(f"format version {version} is from a newer crane")
                raise ValueError("no known format version")
            recorded = data.get("index_url")
            if recorded != key:
                raise ValueError(f"it belongs to {recorded!r}, not {key}")
        except ValueError as exc:
            # JSONDecodeError and UnicodeDecodeError are ValueErrors; neither quotes the
            # document.
            raise CorruptFileError(path, f"is not a valid crane token file ({exc})") from None
        return data

    def load(self, url: str, *, allow_insecure: bool = False) -> TokenSet | None:
        """The stored tokens for `url`; None when there are none.

        Raises `CorruptFileError` (naming the file, which is left untouched) when the file
        cannot be read, is not a crane token file for `url`, or — unless `allow_insecure`,
        which only logout uses, to revoke such tokens — is accessible to other users.
        """
        key = normalise_url(url)
        path = self.path_for(key)
        data = self._read(path, key, allow_insecure)
        if data is None:
            return None
        try:
            return TokenSet.from_json(data)
        except ValueError as exc:
            # TokenSet.from_json names fields, never values.
            raise CorruptFileError(path, f"is not a valid crane token file ({exc})") from None

    def load_password(self, url: str) -> str | None:
        """The HTTP Basic password stored for `url`; None when none is. Errors as `load`."""
        key = normalise_url(url)
        path = self.password_path_for(key)
        data = self._read(path, key, allow_insecure=False)
        if data is None:
            return None
        password = data.get("password")
        if not isinstance(password, str) or not password:
            raise CorruptFileError(path, "is not a valid crane password file (no password)")
        return password

    def save_password(self, url: str, password: str) -> None:
        """Store the HTTP Basic password for `url`; the file is 0600 from its first byte."""
        key = normalise_url(url)
        path = self.password_path_for(key)
        document = {"version": _FORMAT_VERSION, "index_url": key, "password": password}
        try:
            self._ensure_directory()
            atomic_write_text(path, json.dumps(document, indent=2) + "\n", mode=0o600)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be written ({exc.strerror or exc})") from None

    def save(self, url: str, tokens: TokenSet) -> None:
        """Replace the tokens for `url` atomically; the file is 0600 from its first byte."""
        key = normalise_url(url)
        path = self.path_for(key)
        try:
            self._ensure_directory()
            atomic_write_text(path, self._document(key, tokens), mode=0o600)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be written ({exc.strerror or exc})") from None

    def _document(self, key: str, tokens: TokenSet) -> str:
        document = {"version": _FORMAT_VERSION, "index_url": key, **tokens.to_json()}
        return json.dumps(document, indent=2) + "\n"

    @contextmanager
    def reserved(self, url: str) -> Iterator[Callable[[TokenSet], None]]:
        """Room for the next tokens of `url`, taken before they exist.

        A refresh consumes the refresh token it presents (providers rotate it): its result
        must be saved, or the login is lost. So the space is claimed first: a 0600 file
        beside the token file, filled to `_RESERVED_BYTES` and synced. Yields `commit`,
        which writes the tokens into that room and moves it over the token file. Raises
        `ConfigError` naming the path, before anything is asked of the provider, when the
        room cannot be had (a full disk, a read-only directory).
        """
        key = normalise_url(url)
        path = self.path_for(key)
        try:
            self._ensure_directory()
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".next", dir=path.parent)
        except OSError as exc:
            raise ConfigError(_cannot_save(path, exc)) from None
        room = Path(tmp)
        try:
            with os.fdopen(fd, "r+b") as handle:
                _claim(handle, path)

                def commit(tokens: TokenSet) -> None:
                    data = self._document(key, tokens).encode("utf-8")
                    handle.seek(0)
                    handle.write(data)
                    handle.truncate(len(data))
                    handle.flush()
                    os.fsync(handle.fileno())
                    os.replace(room, path)

                yield commit
        finally:
            room.unlink(missing_ok=True)

    def delete(self, url: str) -> bool:
        """Remove the tokens and the stored password for `url`; True when there were any.
        The lock file stays."""
        removed = False
        for path in (self.path_for(url), self.password_path_for(url)):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise CraneError(f"{path}: cannot be removed ({exc.strerror or exc})") from None
            removed = True
        return removed

    @contextmanager
    def lock(self, url: str) -> Iterator[None]:
        """Hold the cross-process lock for `url`. `AuthError` after `lock_timeout` seconds.

        Not re-entrant across `lock()` calls: do not nest two locks on the same index.
        """
        path = self.path_for(url).with_suffix(".lock")
        try:
            self._ensure_directory()
        except OSError as exc:
            raise CraneError(f"{self.directory}: cannot be created ({exc.strerror})") from None
        file_lock = filelock.FileLock(path, timeout=self.lock_timeout, mode=0o600)
        try:
            file_lock.acquire()
        except filelock.Timeout:
            raise AuthError(
                f"another crane process has held {path} for {self.lock_timeout:g} s; "
                "wait for it to finish and try again"
            ) from None
        try:
            yield
        finally:
            file_lock.release()

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _POSIX and self.directory.stat().st_mode & 0o077:
            # Created by something else, or under a lax umask: tighten, since it is ours.
            os.chmod(self.directory, 0o700)


_RESERVED_BYTES = 64 * 1024  # a token file is a few KiB; providers' JWTs stay far below this


def _claim(handle: BinaryIO, path: Path) -> None:
    """Fill and sync `handle` so that the space is really ours (a sparse file is not)."""
    try:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(b"\0" * _RESERVED_BYTES)
        handle.flush()
        os.fsync(handle.fileno())
    except OSError as exc:
        raise ConfigError(_cannot_save(path, exc)) from None


def _cannot_save(path: Path, exc: OSError) -> str:
    return (
        f"{path}: cannot be written ({exc.strerror or exc}); the login was not refreshed, "
        f"so it is kept: free space in, or make writable, {path.parent}"
    )
