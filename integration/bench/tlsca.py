"""A throwaway certificate authority for the benchmark's HTTPS upstream.

`make_ca(directory)` writes `ca.pem` (a test CA), `server.pem` and `server.key` (a leaf
for 127.0.0.1 and localhost, signed by that CA) into `directory`, with the integration
stack's own test CA (`stack/testca.py`). nginx serves the leaf; curl gets `--cacert
ca.pem`, the door `SSL_CERT_FILE=ca.pem` in its environment (its upstream client trusts
what the environment names), the benchmark's own client an `ssl` context that trusts the CA.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from stack.testca import make_test_ca

__all__ = ["BenchCa", "make_ca"]


@dataclass(frozen=True)
class BenchCa:
    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_ca(directory: Path) -> BenchCa:
    ca, _server_context = make_test_ca(directory, ("127.0.0.1", "localhost"))
    return BenchCa(ca, directory / "server.pem", directory / "server.key")
