"""Separate crane processes refreshing one stale login: the provider sees one refresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import crane_launch
from crane_launch.auth import TokenSet, TokenStore

PROCESSES = 4

CHILD = """
import sys, time
from pathlib import Path
from crane_launch.auth import Credentials, TokenStore
from crane_launch.config import PrivateIndex

token_url, ready, go = sys.argv[1:4]
index = PrivateIndex(
    url="https://pkgs.example.test/simple/",
    client_id="crane-test",
    token_url=token_url,
    device_url=token_url,
)
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
with Credentials(index, TokenStore()) as credentials:
    print(credentials.access_token())
"""


class RotatingTokenEndpoint(BaseHTTPRequestHandler):
    """Each refresh token works once; a reused one is recorded (and refused)."""

    valid: set[str]
    used: set[str]
    reused: list[str]
    issued: int
    lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        cls.valid, cls.used, cls.reused, cls.issued = {"ref-1"}, set(), [], 0

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        time.sleep(0.2)  # a slow provider: every process is waiting by now
        cls = type(self)
        with cls.lock:
            token = form["refresh_token"]
            if token in cls.valid:
                cls.valid.discard(token)
                cls.used.add(token)
                cls.issued += 1
                n = cls.issued + 1
                cls.valid.add(f"ref-{n}")
                status, body = 200, {"access_token": f"acc-{n}", "refresh_token": f"ref-{n}"}
            else:
                if token in cls.used:
                    cls.reused.append(token)
                status, body = 400, {"error": "invalid_grant"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_processes_refresh_once(tmp_path: Path, crane_home: Path) -> None:
    RotatingTokenEndpoint.reset()
    now = time.time()
    TokenStore().save(
        "https://pkgs.example.test/simple/",
        TokenSet(
            access_token="acc-1", expires_at=now - 10, obtained_at=now - 310, refresh_token="ref-1"
        ),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), RotatingTokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token_url = f"http://127.0.0.1:{server.server_address[1]}/token"
    root = Path(crane_launch.__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")} | {
        "PYTHONPATH": str(root),
        "CRANE_HOME": str(crane_home),
        "NO_PROXY": "127.0.0.1",
    }
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(PROCESSES)]
    try:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, token_url, str(ready[i]), str(go)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(PROCESSES)
        ]
        deadline = time.monotonic() + 20
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        outputs = [child.communicate(timeout=20) for child in children]
    finally:
        server.shutdown()
        server.server_close()
    assert [child.returncode for child in children] == [0] * PROCESSES, outputs
    assert [out.strip() for out, _ in outputs] == ["acc-2"] * PROCESSES
    assert RotatingTokenEndpoint.issued == 1
    assert RotatingTokenEndpoint.reused == []
