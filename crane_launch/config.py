"""Registered private indexes: where they live on disk, how URLs are compared.

A `PrivateIndex` is everything crane needs to authenticate to one index. The
registry is one JSON file in the config dir, written atomically; a file that
cannot be parsed is reported by path and never rewritten.

`CRANE_HOME`, when set, holds both config (`$CRANE_HOME/config`) and state
(`$CRANE_HOME/state`); otherwise platformdirs chooses per platform.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from crane_launch.environ import SECRET_VARIABLE_FIELDS, cache_dir, config_dir, state_dir
from crane_launch.errors import ConfigError, CorruptFileError, UnknownIndexError, UsageError

__all__ = [
    "AUTH_SCHEMES",
    "DEFAULT_SCOPES",
    "ENVIRONMENT_VARIABLES",
    "Origin",
    "PrivateIndex",
    "Registry",
    "atomic_write_text",
    "builtin_public_index",
    "cache_dir",
    "closest",
    "config_dir",
    "environment_index",
    "is_http_url",
    "normalise_url",
    "origin_of",
    "origin_url",
    "shown_url",
    "state_dir",
]

DEFAULT_SCOPES: tuple[str, ...] = ("openid", "offline_access")
_REGISTRY_VERSION = 1
_DEFAULT_PORTS = {"http": 80, "https": 443}


def builtin_public_index() -> str:
    """pip's own default index, read from pip so that crane names no registry host."""
    from pip._internal.models.index import PyPI  # slow import, needed rarely

    return normalise_url(PyPI.simple_url)


def normalise_url(url: str) -> str:
    """One spelling per index: lower-case scheme and host, no default port, one trailing slash.

    Raises `UsageError` for what cannot be an index URL: no http(s) scheme, no host,
    embedded credentials (they would end up in argv and logs), a query or a fragment.
    """
    text = url.strip()
    if _AMBIGUOUS.search(text):
        raise UsageError("an index URL cannot hold whitespace, a backslash or a control character")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(f"{url!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise UsageError(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise UsageError("index URLs must not carry credentials; crane supplies them")
    if parts.query or parts.fragment:
        raise UsageError(f"{url!r}: an index URL has no query or fragment")
    try:
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{url!r}: {exc}") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = parts.path or "/"
    while "//" in path:
        path = path.replace("//", "/")
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((scheme, netloc, path, "", ""))


class Origin(NamedTuple):
    """What "same origin" compares: lower-case scheme and host, the port always given.

    One type for every origin in crane (the proxy's private origins, link targets,
    redirect targets). A named tuple, so it is hashable and compares equal to the plain
    `(scheme, host, port)` tuple it replaces.
    """

    scheme: str
    host: str
    """Lower case, without brackets (an IPv6 literal is `::1`, not `[::1]`)."""
    port: int


_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")


def origin_of(url: str) -> Origin:
    """The origin of the absolute URL `url`: its port, or the scheme's default when it
    names none (0 for a scheme without one).

    Raises `ValueError` when the port is not a number in 0-65535 or the host is a
    malformed IPv6 literal.
    """
    parts = urlsplit(url)
    if _AMBIGUOUS.search(parts.netloc):
        # Parsers disagree on these (a WHATWG parser ends the host at `\`, Python's does
        # not): the host crane would judge need not be the one the tool connects to.
        raise ValueError(f"ambiguous URL authority: {parts.netloc[:80]!r}")
    scheme = parts.scheme.lower()
    port = parts.port
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return Origin(scheme, (parts.hostname or "").lower(), port)


def is_http_url(text: str) -> bool:
    """Whether `text` is an absolute http(s) URL with a host that every parser reads the
    same way (no whitespace, backslash or control character, a valid port)."""
    if _AMBIGUOUS.search(text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme.lower() in _DEFAULT_PORTS and bool(parts.hostname)


def origin_url(origin: Origin) -> str:
    """`scheme://host[:port]` for `origin`: brackets for IPv6, no default port."""
    shown = f"[{origin.host}]" if ":" in origin.host else origin.host
    if origin.port == _DEFAULT_PORTS.get(origin.scheme):
        return f"{origin.scheme}://{shown}"
    return f"{origin.scheme}://{shown}:{origin.port}"


def shown_url(url: str) -> str:
    """`url` as crane prints it: without userinfo, query and fragment, which may carry a
    secret or a login flow's state. A text without a scheme is returned as it is."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def closest(url: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(url, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


AUTH_SCHEMES: tuple[str, ...] = ("device", "client-credentials", "token", "basic")
"""How crane authenticates to an index: the OAuth 2.0 device flow (a person logs in), OAuth
2.0 client credentials (a CI job), a static bearer token, or HTTP Basic."""


_OPTIONAL_TEXT = (
    "auth",
    "client_secret_env",
    "token_env",
    "token_file",
    "username",
    "password_env",
    "issuer",
    "resource",
    "audience",
    "public_index",
    "revocation_url",
    "probe_path",
)

_NEEDED: dict[str, tuple[str, ...]] = {
    "device": ("client_id", "token_url", "device_url"),
    "client-credentials": ("client_id", "token_url", "client_secret_env"),
    "token": (),
    "basic": ("username",),
}
"""What a saved index of each scheme must have."""


@dataclass(frozen=True)
class PrivateIndex:
    """How to authenticate to one private index. Holds no secret: a secret is read at run
    time from the variable (or file) named here, or from the 0600 token store."""

    url: str
    client_id: str = ""
    token_url: str = ""
    device_url: str = ""
    auth: str = "device"
    """One of `AUTH_SCHEMES`."""
    client_secret_env: str | None = None
    """The variable holding the OAuth client secret (client credentials, or a confidential
    device-flow client)."""
    token_env: str | None = None
    token_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    """None with `auth == "basic"`: the password is asked for once and kept in the store."""
    issuer: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    resource: str | None = None
    audience: str | None = None
    public_index: str | None = None
    revocation_url: str | None = None
    probe_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    from_environment: bool = field(default=False, compare=False)
    """Described by `CRANE_INDEX_URL` and its companions for this run; never saved."""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scopes"] = list(self.scopes)
        extra = data.pop("extra")
        del data["from_environment"]
        return {k: v for k, v in {**extra, **data}.items() if v is not None and v != ""}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PrivateIndex:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "from_environment"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        known["scopes"] = tuple(known.get("scopes", DEFAULT_SCOPES))
        auth = known.get("auth", "device")
        if auth not in AUTH_SCHEMES:
            raise ValueError(f"unknown auth scheme {auth!r} (written by a newer crane?)")
        for name in ("url", "client_id", "token_url", "device_url"):
            if not isinstance(known.get(name, ""), str):
                raise ValueError(f"{name} is not a string")
        for name in _OPTIONAL_TEXT:
            if known.get(name) is not None and not isinstance(known[name], str):
                raise ValueError(f"{name} is not a string")
        if not all(isinstance(scope, str) for scope in known["scopes"]):
            raise ValueError("scopes is not a list of strings")
        for name in _NEEDED[auth]:
            if not known.get(name):
                raise ValueError(f"an index with auth {auth!r} has no {name}")
        if auth == "token" and not (known.get("token_env") or known.get("token_file")):
            raise ValueError("an index with auth 'token' has neither token_env nor token_file")
        return cls(**known, extra=extra)

    @property
    def secret_variables(self) -> frozenset[str]:
        """The environment variables this index reads a secret from."""
        names = (getattr(self, field) for field in SECRET_VARIABLE_FIELDS)
        return frozenset(name for name in names if name)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    The parent directory is created 0700 if missing. The file gets `mode` before any byte
    is written, so a secret is never readable by others, even briefly.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    "CRANE_INDEX_URL",
    "CRANE_AUTH",
    "CRANE_CLIENT_ID",
    "CRANE_CLIENT_SECRET",
    "CRANE_TOKEN_URL",
    "CRANE_ISSUER",
    "CRANE_SCOPE",
    "CRANE_RESOURCE",
    "CRANE_AUDIENCE",
    "CRANE_TOKEN",
    "CRANE_TOKEN_FILE",
    "CRANE_USERNAME",
    "CRANE_PASSWORD",
    "CRANE_PUBLIC_INDEX",
    "CRANE_PROBE_PATH",
)
"""The variables that describe one index for one run, without a registry (CI)."""

_ENVIRONMENT_SCHEMES = ("client-credentials", "token", "basic")


def _environment_value(environ: Mapping[str, str], name: str) -> str | None:
    text = environ.get(name, "").strip()
    return text or None


def _environment_url(environ: Mapping[str, str], name: str) -> str:
    try:
        return normalise_url(environ[name])
    except UsageError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _environment_scheme(environ: Mapping[str, str]) -> str:
    """`CRANE_AUTH`, or the scheme the variables that are set imply."""
    auth = _environment_value(environ, "CRANE_AUTH")
    if auth is None:
        if _environment_value(environ, "CRANE_CLIENT_ID"):
            return "client-credentials"
        if _environment_value(environ, "CRANE_TOKEN") or _environment_value(
            environ, "CRANE_TOKEN_FILE"
        ):
            return "token"
        if _environment_value(environ, "CRANE_USERNAME"):
            return "basic"
        raise ConfigError(
            "CRANE_INDEX_URL is set but not how to authenticate: set CRANE_AUTH to "
            "client-credentials, token or basic"
        )
    auth = auth.lower()
    if auth not in _ENVIRONMENT_SCHEMES:
        raise ConfigError(
            f"CRANE_AUTH={auth!r}: a run without a registry authenticates with "
            "client-credentials, token or basic (the device flow needs `crane index register`)"
        )
    return auth


def _environment_fields(environ: Mapping[str, str], auth: str) -> dict[str, Any]:
    """The scheme's part of the index the environment describes."""

    def required(name: str) -> str:
        text = _environment_value(environ, name)
        if text is None:
            raise ConfigError(f"CRANE_AUTH={auth} needs {name}; set it")
        return text

    if auth == "token":
        token_file = _environment_value(environ, "CRANE_TOKEN_FILE")
        return {"token_file": token_file} if token_file else {"token_env": "CRANE_TOKEN"}
    if auth == "basic":
        username = required("CRANE_USERNAME")
        if ":" in username or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username):
            raise ConfigError("CRANE_USERNAME cannot hold a colon or a control character")
        return {"username": username, "password_env": "CRANE_PASSWORD"}
    token_url = _environment_value(environ, "CRANE_TOKEN_URL")
    issuer = _environment_value(environ, "CRANE_ISSUER")
    if not (token_url or issuer):
        raise ConfigError("CRANE_AUTH=client-credentials needs CRANE_TOKEN_URL or CRANE_ISSUER")
    for name, value in (("CRANE_TOKEN_URL", token_url), ("CRANE_ISSUER", issuer)):
        if value is not None and not is_http_url(value):
            raise ConfigError(f"{name} is not an http:// or https:// URL")
    return {
        "client_id": required("CRANE_CLIENT_ID"),
        "client_secret_env": "CRANE_CLIENT_SECRET",
        "token_url": token_url or "",
        "issuer": issuer,
        "resource": _environment_value(environ, "CRANE_RESOURCE"),
        "audience": _environment_value(environ, "CRANE_AUDIENCE"),
    }


def environment_index(environ: Mapping[str, str]) -> PrivateIndex | None:
    """The index `CRANE_INDEX_URL` and its companions describe; None when it is not set.

    `CRANE_AUTH` names the scheme; without it the scheme follows from the variables set
    (`CRANE_CLIENT_ID`: client credentials, `CRANE_TOKEN`/`CRANE_TOKEN_FILE`: a token,
    `CRANE_USERNAME`: Basic). Secrets stay in the environment: the index names the
    variables they are read from when they are needed. Raises `ConfigError` naming the
    variable that is missing or wrong.
    """
    url = _environment_value(environ, "CRANE_INDEX_URL")
    if url is None:
        if _environment_value(environ, "CRANE_AUTH"):
            raise ConfigError("CRANE_AUTH is set but CRANE_INDEX_URL is not: set both")
        return None
    url = _environment_url(environ, "CRANE_INDEX_URL")
    public_index = None
    if _environment_value(environ, "CRANE_PUBLIC_INDEX"):
        public_index = _environment_url(environ, "CRANE_PUBLIC_INDEX")
    auth = _environment_scheme(environ)
    scopes = tuple((_environment_value(environ, "CRANE_SCOPE") or "").replace(",", " ").split())
    probe_path = _environment_value(environ, "CRANE_PROBE_PATH")
    if probe_path is not None and (not probe_path.startswith("/") or _AMBIGUOUS.search(probe_path)):
        raise ConfigError("CRANE_PROBE_PATH is not a path on the index's origin (/...)")
    return PrivateIndex(
        url=url,
        auth=auth,
        scopes=scopes,
        public_index=public_index,
        probe_path=probe_path,
        from_environment=True,
        **_environment_fields(environ, auth),
    )


class Registry:
    """The registered indexes, keyed by normalised URL. Load, change, then `save()`."""

    def __init__(self, path: Path, indexes: dict[str, PrivateIndex] | None = None) -> None:
        self.path = path
        self._indexes: dict[str, PrivateIndex] = dict(indexes or {})
        self._replaced_secrets: frozenset[str] = frozenset()
        """The secret variables of saved indexes `for_run` replaced: still hidden."""

    @classmethod
    def for_run(cls, environ: Mapping[str, str]) -> Registry:
        """The registry a tool run sees: the saved one, and the index the environment
        describes (`environment_index`), which replaces a saved one of the same URL."""
        registry = cls.load()
        described = environment_index(environ)
        if described is not None:
            replaced = registry._indexes.get(described.url)
            if replaced is not None:
                registry._replaced_secrets |= replaced.secret_variables
                # What the registration says of the index itself still holds.
                described = dataclasses.replace(
                    described,
                    probe_path=described.probe_path or replaced.probe_path,
                    public_index=described.public_index or replaced.public_index,
                )
            registry._indexes[described.url] = described
        return registry

    @classmethod
    def default_path(cls) -> Path:
        return config_dir() / "indexes.json"

    @classmethod
    def load(cls, path: Path | None = None) -> Registry:
        path = path or cls.default_path()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise CorruptFileError(path, f"cannot be read ({exc.strerror})") from None
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("indexes"), list):
                raise ValueError("no 'indexes' list")
            if not all(isinstance(item, dict) for item in data["indexes"]):
                raise ValueError("an index entry is not an object")
            indexes = [PrivateIndex.from_json(item) for item in data["indexes"]]
            by_url = {normalise_url(index.url): index for index in indexes}
        except (ValueError, TypeError, UsageError) as exc:
            raise CorruptFileError(path, f"is not a valid crane index registry ({exc})") from None
        return cls(path, by_url)

    def save(self) -> None:
        """Write the registry; an index described by the environment is never written
        (save a registry from `load`, not from `for_run`)."""
        saved = [index for index in self._indexes.values() if not index.from_environment]
        data = {"version": _REGISTRY_VERSION, "indexes": [index.to_json() for index in saved]}
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n", mode=0o600)

    def __iter__(self) -> Iterator[PrivateIndex]:
        return iter(self._indexes.values())

    def __len__(self) -> int:
        return len(self._indexes)

    def secret_variables(self) -> frozenset[str]:
        """Every variable a registered index reads a secret from (and those of a saved
        index the environment replaced for this run)."""
        named = frozenset(name for index in self for name in index.secret_variables)
        return named | self._replaced_secrets

    def find(self, url: str) -> PrivateIndex | None:
        """The registered index for `url`, in any spelling; None when not registered."""
        try:
            return self._indexes.get(normalise_url(url))
        except UsageError:
            return None

    def get(self, url: str) -> PrivateIndex:
        """Like `find`, but an unknown URL is an error that suggests the closest one."""
        index = self.find(url)
        if index is None:
            raise UnknownIndexError(url, closest(url, self._indexes))
        return index

    def put(self, index: PrivateIndex) -> bool:
        """Add or replace; True when the URL was already registered."""
        key = normalise_url(index.url)
        existed = key in self._indexes
        self._indexes[key] = dataclasses.replace(index, url=key)
        return existed

    def remove(self, url: str) -> PrivateIndex:
        index = self.get(url)
        del self._indexes[index.url]
        return index
