"""loadtest.addresses: each simulated client's connections come from its own loopback address."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
import requests

from loadtest.addresses import SourceAddressAdapter, source_address


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.client_address[0])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    Recorder.seen = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_addresses_are_loopback_and_distinct_for_253_clients():
    addresses = [source_address(i) for i in range(253)]
    assert len(set(addresses)) == 253
    assert addresses[0] == "127.0.0.2" and addresses[-1] == "127.0.0.254"
    assert source_address(253) == "127.0.0.2"


def test_the_server_sees_each_clients_own_address(server: int):
    for index in (0, 5, 252):
        with requests.Session() as session:
            session.mount("http://", SourceAddressAdapter(source_address(index)))
            assert session.get(f"http://127.0.0.1:{server}/", timeout=5).status_code == 204
    assert Recorder.seen == ["127.0.0.2", "127.0.0.7", "127.0.0.254"]
