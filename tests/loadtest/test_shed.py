"""A 429 `uploads_busy` is the edge shedding large uploads on purpose (docs/edge.md): the load
run counts it as shed, not failed, and exits 0; any other unexpected answer still fails it."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from loadtest.verdicts import judge
from tests.support.paths import LEAF_PHOTOS_DIR, SCRIPTS_DIR

GOOD = frozenset({200})


@pytest.mark.parametrize(("status", "code", "verdict"), [
    (200, None, "ok"),
    (429, "uploads_busy", "shed"),
    (429, "rate_limited", "failure"),  # a client over its own limit: the run is too aggressive
    (503, "uploads_busy", "failure"),
    (500, None, "failure"),
])
def test_judge(status: int, code: str | None, verdict: str) -> None:
    assert judge(status, code, GOOD) == verdict


class Edge(http.server.BaseHTTPRequestHandler):
    """Answers every upload with one fixed problem document."""

    code: ClassVar[str] = "uploads_busy"
    port: ClassVar[int] = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"status": 429, "code": Edge.code}).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def edge() -> Iterator[type[Edge]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Edge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Edge.port = httpd.server_address[1]
    yield Edge
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow  # two 2-second Locust runs in a subprocess
@pytest.mark.parametrize(("code", "status"), [("uploads_busy", 0), ("rate_limited", 1)])
def test_the_run_exits_0_on_shedding_only(edge: type[Edge], tmp_path: Path, code: str,
                                          status: int) -> None:
    edge.code = code
    result = subprocess.run(
        [str(SCRIPTS_DIR / "loadtest"), "fixed", "--seconds", "2", "--users", "2",
         "--url", f"http://127.0.0.1:{edge.port}", "--photos", str(LEAF_PHOTOS_DIR),
         "--no-large", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "PORT"})
    assert result.returncode == status, result.stdout + result.stderr
    summary = json.loads((tmp_path / "fixed-summary.json").read_text())
    assert summary["requests"] > 0
    if code == "uploads_busy":  # every answer was shed: none failed
        assert (summary["failures"], summary["shed"]) == (0, summary["requests"])
    else:
        assert summary["failures"] == summary["requests"]
