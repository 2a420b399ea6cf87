"""The interception CA: what a child's TLS client accepts, and that no key touches disk."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crane_launch.errors import ConfigError, CraneError
from crane_launch.proxy import tls
from crane_launch.proxy.tls import (
    CA_COMMON_NAME,
    InterceptionCA,
    TLSInterceptionUnavailable,
    default_trust_file,
    write_ca_bundle,
)

HOSTS = ["localhost", "127.0.0.1"]
X509_V_ERR_PERMITTED_VIOLATION = 47
X509_V_ERR_EXCLUDED_VIOLATION = 48
T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs memfd or /dev/fd")


@pytest.fixture(scope="module")
def ca() -> InterceptionCA:
    return InterceptionCA.create(HOSTS)


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


@contextmanager
def _serving(context: ssl.SSLContext) -> Iterator[int]:
    """A one-connection TLS server on 127.0.0.1 that says b"ok" after the handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            raw, _ = listener.accept()
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.sendall(b"ok")
        except (OSError, ssl.SSLError):
            pass  # the client refused us; the client side asserts

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(timeout=5)
        listener.close()


def _client_for(ca_pem: bytes) -> ssl.SSLContext:
    client = ssl.create_default_context(cadata=ca_pem.decode("ascii"))  # trusts only crane
    client.set_alpn_protocols(["http/1.1"])
    return client


def _connect(context: ssl.SSLContext, server_hostname: str, client: ssl.SSLContext) -> Any:
    """Handshake with `server_hostname` (reached at 127.0.0.1); returns what was seen."""
    with (
        _serving(context) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        return conn.version(), conn.selected_alpn_protocol(), conn.getpeercert(), conn.recv(2)


# --- the CA certificate ------------------------------------------------------------------


def test_ca_is_a_short_lived_p256_ca_constrained_to_exactly_the_hosts(
    ca: InterceptionCA,
) -> None:
    cert = _cert(ca.cert_pem())
    ext = cert.extensions

    basic = ext.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0

    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature

    constraints = ext.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("127.0.0.1/32")),
    ]
    assert constraints.value.excluded_subtrees is None

    ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_COMMON_NAME
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)

    now = datetime.now(UTC)
    assert cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc <= now + timedelta(hours=24)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(hours=24, minutes=5)


def test_two_cas_never_share_a_serial_or_key() -> None:
    first, second = (_cert(InterceptionCA.create(["localhost"]).cert_pem()) for _ in range(2))
    assert first.serial_number != second.serial_number
    assert first.public_key() != second.public_key()


@pytest.mark.parametrize(
    ("lifetime", "expected_end"),
    [
        (timedelta(hours=1), T0 + timedelta(hours=1)),
        (timedelta(hours=24), T0 + timedelta(hours=24)),
        (timedelta(days=30), T0 + timedelta(hours=24)),  # capped
    ],
)
def test_validity_starts_five_minutes_back_and_ends_within_a_day(
    lifetime: timedelta, expected_end: datetime
) -> None:
    ca = InterceptionCA.create(["localhost"], lifetime=lifetime, clock=lambda: T0)
    cert = _cert(ca.cert_pem())
    assert cert.not_valid_before_utc == T0 - timedelta(minutes=5)
    assert cert.not_valid_after_utc == expected_end
    assert ca.not_valid_after == expected_end


@pytest.mark.parametrize(
    ("hosts", "excluded"),
    [
        (["localhost"], ["0.0.0.0/0", "::/0"]),  # no IP may be certified
        (["127.0.0.1", "::1"], [""]),  # no DNS name may be certified
    ],
)
def test_a_name_type_no_host_uses_is_excluded(hosts: list[str], excluded: list[str]) -> None:
    cert = _cert(InterceptionCA.create(hosts).cert_pem())
    constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    assert constraints.excluded_subtrees == [
        x509.DNSName(name) if name == "" else x509.IPAddress(ipaddress.ip_network(name))
        for name in excluded
    ]


def test_hosts_are_canonical_and_deduplicated() -> None:
    ca = InterceptionCA.create(["LocalHost.", "localhost", "[::1]", "0:0::1", "Bücher.example"])
    assert ca.hosts == ("localhost", "::1", "xn--bcher-kva.example")
    constraints = _cert(ca.cert_pem()).extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.value.permitted_subtrees == [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
        x509.DNSName("xn--bcher-kva.example"),
    ]


@pytest.mark.parametrize("host", ["sub.localhost", "not a host", "localhost.example"])
def test_only_the_exact_names_get_a_leaf(host: str) -> None:
    # Refused before any key is made, so this holds on every platform.
    with pytest.raises(ValueError, match=r"outside|not a valid host"):
        InterceptionCA.create(["localhost"]).leaf_ssl_context(host)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hosts": []},
        {"hosts": ["*.example"]},
        {"hosts": ["bad_-.example-"]},
        {"hosts": ["10.0.0.300"]},
        {"hosts": ["fe80::1%eth0"]},
        {"hosts": ["localhost"], "lifetime": timedelta(0)},
        {"hosts": ["localhost"], "clock": lambda: datetime(2031, 1, 1)},
    ],
)
def test_create_refuses_what_cannot_be_certified(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        InterceptionCA.create(**kwargs)


# --- leaves --------------------------------------------------------------------------------


def _presented_leaf(ca: InterceptionCA, host: str) -> x509.Certificate:
    """The certificate `leaf_ssl_context(host)` presents to a client that trusts the CA."""
    with (
        _serving(ca.leaf_ssl_context(host)) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        _client_for(ca.cert_pem()).wrap_socket(raw, server_hostname=host) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert conn.recv(2) == b"ok"  # the handshake proved the server holds the leaf's key
    assert der is not None
    return x509.load_der_x509_certificate(der)


@posix_only
def test_leaf_is_a_p256_server_cert_for_the_host_inside_the_ca_validity() -> None:
    ca = InterceptionCA.create(HOSTS)
    ca_cert = _cert(ca.cert_pem())
    leaf = _presented_leaf(ca, "localhost")

    leaf.verify_directly_issued_by(ca_cert)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName([x509.DNSName("localhost")])
    )
    assert (
        ExtendedKeyUsageOID.SERVER_AUTH
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca_cert.not_valid_before_utc <= leaf.not_valid_before_utc
    assert leaf.not_valid_after_utc <= ca_cert.not_valid_after_utc
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)

    ip_leaf = _presented_leaf(ca, "127.0.0.1")
    assert ip_leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == (
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    )


@posix_only
@pytest.mark.parametrize("host", HOSTS)
def test_a_client_trusting_only_the_ca_accepts_the_leaf(ca: InterceptionCA, host: str) -> None:
    context = ca.leaf_ssl_context(host)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

    version, alpn, peer, data = _connect(context, host, _client_for(ca.cert_pem()))

    assert version in {"TLSv1.2", "TLSv1.3"}
    assert alpn == "http/1.1"
    assert data == b"ok"
    kind = "DNS" if host == "localhost" else "IP Address"
    assert peer["subjectAltName"] == ((kind, host),)


@posix_only
def test_leaf_contexts_are_cached_per_host(ca: InterceptionCA) -> None:
    assert ca.leaf_ssl_context("localhost") is ca.leaf_ssl_context("LOCALHOST.")
    assert ca.leaf_ssl_context("localhost") is not ca.leaf_ssl_context("127.0.0.1")


@pytest.mark.parametrize("host", ["evil.example", "sub.localhost", "127.0.0.2", "::1"])
def test_hosts_outside_the_ca_are_refused(ca: InterceptionCA, host: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        ca.leaf_ssl_context(host)


@posix_only
def test_a_leaf_outside_the_name_constraints_fails_verification(ca: InterceptionCA) -> None:
    # Forge what the public API refuses, to prove the clients enforce the constraint.
    rogue = tls._server_context(*ca._mint_leaf_pem("evil.example"))

    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _connect(rogue, "evil.example", _client_for(ca.cert_pem()))

    assert caught.value.verify_code == X509_V_ERR_PERMITTED_VIOLATION
    assert "permitted subtree violation" in caught.value.verify_message


@posix_only
def test_a_dns_only_ca_cannot_vouch_for_an_ip_address() -> None:
    ca = InterceptionCA.create(["localhost"])
    rogue = tls._server_context(*ca._mint_leaf_pem(ipaddress.ip_address("127.0.0.1")))

    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        _connect(rogue, "127.0.0.1", _client_for(ca.cert_pem()))

    assert caught.value.verify_code == X509_V_ERR_EXCLUDED_VIOLATION


def test_an_expired_ca_mints_nothing() -> None:
    now = [T0]
    ca = InterceptionCA.create(["localhost"], lifetime=timedelta(hours=1), clock=lambda: now[0])
    now[0] = T0 + timedelta(hours=2)
    with pytest.raises(ValueError, match="expired"):
        ca.leaf_ssl_context("localhost")


# --- keys stay in memory -------------------------------------------------------------------


def _files_with_private_keys(*roots: Path, since: float = 0.0) -> list[Path]:
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory, name)
                try:
                    info = path.stat()
                    recent_and_small = info.st_mtime >= since and info.st_size < 1_000_000
                    if recent_and_small and b"PRIVATE KEY" in path.read_bytes():
                        found.append(path)
                except OSError:
                    continue
    return found


@pytest.fixture
def loaded_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """Every path handed to load_cert_chain, with a disk scan done while it is open."""
    system_tmp = Path(tempfile.gettempdir())
    started = time.time() - 1
    scratch_tmp = tmp_path / "tmp"
    cwd = tmp_path / "cwd"
    scratch_tmp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_tmp))
    monkeypatch.setenv("TMPDIR", str(scratch_tmp))
    monkeypatch.chdir(cwd)
    original = ssl.SSLContext.load_cert_chain
    paths: list[str] = []

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        paths.extend(str(p) for p in (certfile, keyfile) if p is not None)
        # While OpenSSL may read them: the key is in neither a temp dir nor the cwd.
        assert _files_with_private_keys(scratch_tmp, cwd) == []
        assert _files_with_private_keys(system_tmp, since=started) == []
        for path in paths:
            assert not stat.S_ISREG(os.stat(path).st_mode) or os.stat(path).st_nlink == 0
        original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    yield paths
    assert _files_with_private_keys(scratch_tmp, cwd) == []
    assert _files_with_private_keys(system_tmp, since=started) == []


def _open_fd_targets() -> list[str]:
    targets = []
    for name in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue
    return targets


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="Linux memfd only")
def test_linux_loads_the_leaf_key_from_a_memfd_that_is_closed_after(
    loaded_paths: list[str],
) -> None:
    ca = InterceptionCA.create(HOSTS)
    context = ca.leaf_ssl_context("localhost")

    assert len(loaded_paths) == 2
    assert all(path.startswith("/proc/self/fd/") for path in loaded_paths)
    assert not any("crane-tls" in target for target in _open_fd_targets())
    assert _connect(context, "localhost", _client_for(ca.cert_pem()))[3] == b"ok"


@posix_only
def test_without_memfd_the_key_travels_through_a_pipe(
    loaded_paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.path.isdir("/dev/fd"):
        pytest.skip("no /dev/fd on this system")
    monkeypatch.delattr(os, "memfd_create", raising=False)
    before = len(os.listdir("/dev/fd"))
    ca = InterceptionCA.create(HOSTS)

    context = ca.leaf_ssl_context("127.0.0.1")

    assert all(path.startswith("/dev/fd/") for path in loaded_paths)
    assert len(os.listdir("/dev/fd")) == before
    assert _connect(context, "127.0.0.1", _client_for(ca.cert_pem()))[3] == b"ok"


@posix_only
def test_without_an_in_memory_file_interception_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca = InterceptionCA.create(HOSTS)
    open_before = len(os.listdir("/dev/fd"))
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # neither /proc nor /dev/fd

    with pytest.raises(TLSInterceptionUnavailable, match="index door") as caught:
        ca.leaf_ssl_context("localhost")

    assert isinstance(caught.value, CraneError)
    assert len(os.listdir("/dev/fd")) == open_before


def test_repr_names_hosts_and_hides_the_key(ca: InterceptionCA) -> None:
    text = repr(ca)
    assert "localhost" in text
    assert "KEY" not in text.upper()


# --- the child's CA bundle -----------------------------------------------------------------


@pytest.fixture
def other_pem() -> bytes:
    return InterceptionCA.create(["base.example"]).cert_pem()


def _ca_count(bundle: Path) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(bundle))
    return int(context.cert_store_stats()["x509_ca"])


@posix_only
def test_bundle_is_the_base_trust_plus_the_ca_in_a_private_file(
    ca: InterceptionCA, other_pem: bytes, tmp_path: Path
) -> None:
    base = tmp_path / "corporate.pem"
    base.write_bytes(other_pem.rstrip(b"\n"))  # a bundle without a final newline
    run_dir = tmp_path / "run"

    bundle = write_ca_bundle(ca.cert_pem(), base_bundle=base, directory=run_dir)

    content = bundle.read_bytes()
    assert content.startswith(other_pem.rstrip(b"\n"))
    assert ca.cert_pem() in content
    assert b"PRIVATE KEY" not in content
    assert bundle.parent == run_dir
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert _ca_count(bundle) == 2


def test_each_bundle_gets_a_fresh_file(ca: InterceptionCA, tmp_path: Path) -> None:
    first = write_ca_bundle(ca.cert_pem(), base_bundle=None, directory=tmp_path)
    second = write_ca_bundle(ca.cert_pem(), base_bundle=None, directory=tmp_path)
    assert first != second


def test_bundle_from_a_certificate_directory(
    ca: InterceptionCA, other_pem: bytes, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "a.pem").write_bytes(other_pem)
    (certs / "README").write_text("not a certificate\n")

    bundle = write_ca_bundle(ca.cert_pem(), base_bundle=certs, directory=tmp_path / "run")

    assert _ca_count(bundle) == 2


def test_unreadable_base_bundle_is_a_config_error(ca: InterceptionCA, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=r"nope\.pem"):
        write_ca_bundle(ca.cert_pem(), base_bundle=missing, directory=tmp_path / "run")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def _verify_paths(cafile: Path | None) -> ssl.DefaultVerifyPaths:
    path = str(cafile) if cafile else "/nonexistent/cert.pem"
    # `cafile` is what OpenSSL would read for *crane's* environment; crane ignores it.
    return ssl.DefaultVerifyPaths("", "", "SSL_CERT_FILE", path, "SSL_CERT_DIR", path)


def test_bundle_without_base_uses_the_system_roots(
    ca: InterceptionCA, other_pem: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "system.pem"
    system.write_bytes(other_pem)
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(system))

    bundle = write_ca_bundle(ca.cert_pem(), base_bundle=None, directory=tmp_path / "run")

    assert bundle.read_bytes().startswith(other_pem)
    assert _ca_count(bundle) == 2


def test_bundle_without_system_roots_falls_back_to_certifi(
    ca: InterceptionCA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(None))

    bundle = write_ca_bundle(ca.cert_pem(), base_bundle=None, directory=tmp_path / "run")

    assert bundle.read_bytes().startswith(Path(certifi.where()).read_bytes())
    assert bundle.read_bytes().endswith(ca.cert_pem())


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {
                "SSL_CERT_FILE": "ssl.pem",
                "REQUESTS_CA_BUNDLE": "req.pem",
                "PIP_CERT": "pip.pem",
                "CURL_CA_BUNDLE": "curl.pem",
            },
            "ssl.pem",
        ),
        ({"REQUESTS_CA_BUNDLE": "req.pem", "PIP_CERT": "pip.pem"}, "req.pem"),
        ({"SSL_CERT_FILE": "", "PIP_CERT": "pip.pem", "CURL_CA_BUNDLE": "c.pem"}, "pip.pem"),
        ({"CURL_CA_BUNDLE": "curl.pem", "SSL_CERT_DIR": "dir"}, "curl.pem"),
        ({}, "system"),
    ],
)
def test_default_trust_file_follows_the_childs_environment(
    environ: dict[str, str], expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "system.pem"
    system.write_bytes(b"")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(system))

    chosen = default_trust_file(environ)

    assert chosen == (system if expected == "system" else Path(expected))


def test_default_trust_file_is_none_without_any_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: _verify_paths(None))
    assert default_trust_file({}) is None
