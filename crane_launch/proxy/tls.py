"""crane's TLS-interception certificate authority, and the CA bundle a child trusts.

The transparent door answers CONNECT to a private host with TLS of its own, so the child
must trust a certificate crane made. What a caller may rely on:

- `InterceptionCA.create(hosts)` makes an ECDSA P-256 CA that lives for one run: valid
  for at most 24 hours, `path_length=0`, and name-constrained (critical): the permitted
  subtrees are exactly the given hosts, and a name type none of them uses (IP addresses,
  or DNS names) is excluded outright, so the CA vouches for nothing else.
- `InterceptionCA.create_for_guard()` makes the same CA without name constraints: the
  guard (design section 10) terminates TLS for every host the child reaches, which no
  list made before the run can name. What keeps it safe is what it shares with the other
  form: its key exists only in this process's memory, it lives at most the run's 24
  hours, and only the run's child is handed a bundle that trusts it.
- The CA's private key and every leaf key exist only in this process's memory. No key is
  ever written to a file, temporary or not.
- `leaf_ssl_context(host)` refuses hosts outside the CA's names and caches one server
  context per host for the CA's lifetime.
- `write_ca_bundle` writes the trust the child would have had plus crane's CA to a 0600
  file; the caller deletes it after the run. The file holds certificates only.

Loading a key into `ssl.SSLContext` without a file: the standard library has no
in-memory form of `load_cert_chain`; it only opens paths. crane hands it paths that name
memory, not disk:

- Linux: an anonymous `memfd_create` file, opened by OpenSSL as `/proc/self/fd/N` and
  closed straight after loading. It lives in RAM (it can be swapped like any process
  memory, never written to a file system) and vanishes with its last descriptor.
- Other POSIX systems with a working `/dev/fd` (macOS, BSD with fdescfs): a pipe; the
  PEM (about 1 KiB, well under any pipe's capacity) is written, the write end closed, and
  OpenSSL reads `/dev/fd/N` once. Certificate and key travel in separate pipes because
  `load_cert_chain` opens each path once.
- Anything else (Windows, Linux without /proc): `TLSInterceptionUnavailable`. A file in a
  private directory that is unlinked after loading was rejected: the key would still
  reach a disk. The index door (`crane pip`, `crane serve`) needs no interception.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crane_launch.errors import ConfigError, CraneError

__all__ = [
    "CA_COMMON_NAME",
    "MAX_LIFETIME",
    "TRUST_ENV_VARS",
    "InterceptionCA",
    "TLSInterceptionUnavailable",
    "default_trust_file",
    "write_ca_bundle",
]

CA_COMMON_NAME = "crane interception CA (this run only)"
MAX_LIFETIME = timedelta(hours=24)
# Tolerate a client whose clock is a little behind ours.
_BACKDATE = timedelta(minutes=5)

# Where a child looks for its CA bundle, in the order crane honours them.
TRUST_ENV_VARS: tuple[str, ...] = (
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "PIP_CERT",
    "CURL_CA_BUNDLE",
)

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_PEM_CERT_MARK = b"-----BEGIN CERTIFICATE-----"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TLSInterceptionUnavailable(CraneError):
    """This platform gives no way to load a key into OpenSSL without a file on disk."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _canonical_host(host: str) -> str | _IPAddress:
    """A host as the CA and leaves name it: an IP address, or a lower-case ASCII DNS name.

    Raises `ValueError` for what cannot be a server name (empty, wildcards, bad labels).
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            raise ValueError(f"{host!r}: an address with a zone cannot be certified")
        return address
    name = text.rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"{host!r} is not a valid host name") from None
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # not a name, and not an address ip_address accepts
    ):
        raise ValueError(f"{host!r} is not a valid host name")
    return name


def _general_name(host: str | _IPAddress) -> x509.GeneralName:
    if isinstance(host, str):
        return x509.DNSName(host)
    return x509.IPAddress(host)


def _subtree(host: str | _IPAddress) -> x509.GeneralName:
    if isinstance(host, str):
        return x509.DNSName(host)
    return x509.IPAddress(ipaddress.ip_network(host))  # /32 or /128


def _unused_name_types(names: Sequence[str | _IPAddress]) -> list[x509.GeneralName] | None:
    # RFC 5280 constrains only the name types a constraint mentions: a CA permitted just
    # "localhost" would still vouch for any IP address. Exclude every name of a type the
    # hosts do not use. An empty DNS constraint matches all names (OpenSSL, Go, webpki).
    excluded: list[x509.GeneralName] = []
    if all(isinstance(name, str) for name in names):
        excluded += [
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ]
    if not any(isinstance(name, str) for name in names):
        excluded.append(x509.DNSName(""))
    return excluded or None


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


class InterceptionCA:
    """A certificate authority for one crane run; its key never leaves this process.

    Build one with `create`. Thread-safe: leaf contexts may be requested from any thread.
    """

    def __init__(
        self,
        *,
        key: ec.EllipticCurvePrivateKey,
        certificate: x509.Certificate,
        hosts: Sequence[str | _IPAddress] | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._key = key
        self._certificate = certificate
        self._hosts = None if hosts is None else tuple(dict.fromkeys(hosts))
        self._clock = clock
        self._contexts: dict[str | _IPAddress, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls,
        hosts: Sequence[str],
        *,
        lifetime: timedelta = MAX_LIFETIME,
        clock: Callable[[], datetime] = _utcnow,
    ) -> InterceptionCA:
        """A new CA for `hosts` (DNS names or IP literals), valid from 5 minutes ago.

        `lifetime` is capped at `MAX_LIFETIME`. Raises `ValueError` for no hosts, an
        invalid host, a non-positive lifetime or a clock without a time zone.
        """
        if isinstance(hosts, str):
            raise TypeError("hosts must be a sequence of host names, not one string")
        names = list(dict.fromkeys(_canonical_host(host) for host in hosts))
        if not names:
            raise ValueError("an interception CA needs at least one host")
        constraints = x509.NameConstraints(
            permitted_subtrees=[_subtree(name) for name in names],
            excluded_subtrees=_unused_name_types(names),
        )
        return cls._build(names, constraints, lifetime, clock)

    @classmethod
    def create_for_guard(
        cls, *, lifetime: timedelta = MAX_LIFETIME, clock: Callable[[], datetime] = _utcnow
    ) -> InterceptionCA:
        """A new CA that may vouch for any host (see the module docstring)."""
        return cls._build(None, None, lifetime, clock)

    @classmethod
    def _build(
        cls,
        names: list[str | _IPAddress] | None,
        constraints: x509.NameConstraints | None,
        lifetime: timedelta,
        clock: Callable[[], datetime],
    ) -> InterceptionCA:
        if lifetime <= timedelta(0):
            raise ValueError("the CA lifetime must be positive")
        now = clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return time-zone aware datetimes")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
        public_key = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + min(lifetime, MAX_LIFETIME))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if constraints is not None:
            builder = builder.add_extension(constraints, critical=True)
        certificate = builder.sign(key, hashes.SHA256())
        return cls(key=key, certificate=certificate, hosts=names, clock=clock)

    def __repr__(self) -> str:
        hosts = "any host" if self._hosts is None else ", ".join(str(h) for h in self._hosts)
        return f"<InterceptionCA for {hosts} until {self.not_valid_after.isoformat()}>"

    @property
    def hosts(self) -> tuple[str, ...] | None:
        """The permitted names, canonical: lower-case DNS names and compressed IPs; None
        for a guard's CA, which permits every name."""
        return None if self._hosts is None else tuple(str(host) for host in self._hosts)

    @property
    def not_valid_after(self) -> datetime:
        """When the CA, and with it every leaf it made, stops being valid."""
        return self._certificate.not_valid_after_utc

    def cert_pem(self) -> bytes:
        """The CA certificate in PEM: public, safe to write into a bundle."""
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def leaf_ssl_context(self, host: str) -> ssl.SSLContext:
        """A TLS server context presenting a leaf certificate for `host`.

        TLS 1.2 or later, ALPN `http/1.1`. The same context is returned for the same
        host for the rest of the run. Raises `ValueError` for a host the CA does not
        permit, `TLSInterceptionUnavailable` where keys cannot be loaded from memory.
        """
        name = self._require_permitted(host)
        with self._lock:
            context = self._contexts.get(name)
            if context is None:
                cert_pem, key_pem = self._mint_leaf_pem(name)
                context = _server_context(cert_pem, key_pem)
                self._contexts[name] = context
            return context

    def _require_permitted(self, host: str) -> str | _IPAddress:
        name = _canonical_host(host)
        if self._hosts is not None and name not in self._hosts:
            raise ValueError(
                f"{host!r} is outside this interception CA's names "
                f"({', '.join(str(h) for h in self._hosts)})"
            )
        return name

    def _mint_leaf_pem(self, name: str | _IPAddress) -> tuple[bytes, bytes]:
        """A fresh (certificate PEM, PKCS#8 key PEM) pair for `name`, valid until the CA
        expires. `ValueError` once the CA has expired."""
        # No permission check here: `leaf_ssl_context` checks first, and the tests forge
        # leaves outside the CA's names with this to prove that clients reject them.
        now = self._clock()
        not_before = max(now - _BACKDATE, self._certificate.not_valid_before_utc)
        not_after = self._certificate.not_valid_after_utc
        if not_before >= not_after:
            raise ValueError("this interception CA has expired; start a new run")
        key = ec.generate_private_key(ec.SECP256R1())
        public_key = key.public_key()
        ca_key_id = self._certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        certificate = (
            x509.CertificateBuilder()
            # An empty subject keeps verifiers from matching a common name against the
            # DNS constraints; the (then critical) SAN carries the only name.
            .subject_name(x509.Name([]))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([_general_name(name)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _server_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with _memory_path(cert_pem) as cert_path, _memory_path(key_pem) as key_path:
        context.load_cert_chain(cert_path, key_path)
    return context


@contextmanager
def _memory_path(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that names `data` in memory, valid inside the block."""
    with ExitStack() as stack:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("crane-tls", os.MFD_CLOEXEC)
            stack.callback(os.close, fd)
            _write_all(fd, data)
            path = f"/proc/self/fd/{fd}"
            if os.path.exists(path):
                yield path
                return
        read_fd, write_fd = os.pipe()
        stack.callback(os.close, read_fd)
        path = f"/dev/fd/{read_fd}"
        try:
            usable = os.path.exists(path)
            if usable:
                # A full pipe would block forever, since nobody reads until we return.
                os.set_blocking(write_fd, False)
                _write_all(write_fd, data)
        except BlockingIOError:
            usable = False
        finally:
            os.close(write_fd)
        if not usable:
            raise TLSInterceptionUnavailable(
                "TLS interception needs an in-memory file (memfd or /dev/fd), which this "
                "system lacks; use the index door (`crane pip`, `crane serve`) instead"
            )
        yield path


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def default_trust_file(environ: Mapping[str, str]) -> Path | None:
    """The CA bundle a child with `environ` would trust, or None when none is known.

    The first non-empty of `TRUST_ENV_VARS` in `environ`, else OpenSSL's default CA
    file when it exists. A variable naming a missing file is still returned, so that
    `write_ca_bundle` reports it rather than silently trusting something else.
    """
    for variable in TRUST_ENV_VARS:
        value = environ.get(variable)
        if value:
            return Path(value)
    return _system_cafile()


def _system_cafile() -> Path | None:
    # The compiled-in default, not `.cafile`: that one reads crane's own SSL_CERT_FILE,
    # and the child's environment has already been consulted.
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.openssl_cafile, paths.cafile):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def _default_roots() -> bytes:
    system = _system_cafile()
    if system is not None:
        return system.read_bytes()
    try:
        import certifi
    except ImportError:
        return b""
    return Path(certifi.where()).read_bytes()


def _read_bundle(path: Path) -> bytes:
    try:
        if path.is_dir():
            # A hashed certificate directory (REQUESTS_CA_BUNDLE may name one).
            parts = []
            for entry in sorted(path.iterdir()):
                if entry.is_file():
                    content = entry.read_bytes()
                    if _PEM_CERT_MARK in content:
                        parts.append(content.rstrip(b"\n") + b"\n")
            return b"".join(parts)
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the CA bundle: {exc.strerror or exc}") from None


def write_ca_bundle(ca_pem: bytes, *, base_bundle: Path | None, directory: Path) -> Path:
    """Write the child's CA bundle: `base_bundle` (or the default roots) plus `ca_pem`.

    Without `base_bundle` the base is OpenSSL's default CA file, else certifi's, else
    nothing. The file is created 0600 with a fresh name in `directory` (made 0700 when
    missing) and its path returned; the caller deletes it after the run. Raises
    `ConfigError` when `base_bundle` cannot be read.
    """
    base = _read_bundle(base_bundle) if base_bundle is not None else _default_roots()
    if base and not base.endswith(b"\n"):
        base += b"\n"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file 0600 with O_EXCL.
    fd, name = tempfile.mkstemp(prefix="crane-ca-", suffix=".pem", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(base)
            stream.write(b"# crane interception CA, this run only\n")
            stream.write(ca_pem)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
