"""loadtest.addresses: each simulated client's connections come from its own loopback address;
over HTTPS each handshake names the request's host and verifies the certificate for it."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from loadtest.addresses import SourceAddressAdapter, set_up_client, source_address
from tests.support.certs import write_ca_and_server


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


class NameRecorder(http.server.BaseHTTPRequestHandler):
    """Records the TLS server name (SNI) each request's connection asked for."""

    names: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        NameRecorder.names.append(getattr(self.connection, "server_hostname_seen", None))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on 127.0.0.1 whose certificate (from a private CA) names only the two
    stack hosts, as Traefik's per-name certificates do: (port, the CA's file)."""
    ca, cert, key = write_ca_and_server(tmp_path, "ui.cassava.test", "api.cassava.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_name(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        connection.server_hostname_seen = name  # type: ignore[attr-defined]

    context.sni_callback = remember_name  # type: ignore[assignment]
    NameRecorder.names = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NameRecorder)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], ca
    httpd.shutdown()
    httpd.server_close()


def test_https_names_the_host_header_in_the_handshake_and_verifies_it(
        tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    with requests.Session() as session:
        set_up_client(session, source_address(3), str(ca))
        for name in ("api.cassava.test", "ui.cassava.test"):
            response = session.get(f"https://127.0.0.1:{port}/", headers={"Host": name},
                                   timeout=5)
            assert response.status_code == 204
    assert NameRecorder.names == ["api.cassava.test", "ui.cassava.test"]


def test_https_refuses_a_certificate_that_does_not_name_the_host(
        tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    with requests.Session() as session:
        set_up_client(session, source_address(3), str(ca))
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://127.0.0.1:{port}/", headers={"Host": "other.cassava.test"},
                        timeout=5)
    assert NameRecorder.names == []
