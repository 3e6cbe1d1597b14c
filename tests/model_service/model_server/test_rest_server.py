"""The REST port against hostile clients: malformed and deeply nested JSON, garbage, silent and slow
clients, more connections than allowed. Each gets TF Serving's error shape or a closed
connection, never a 500, and a good :predict is served afterwards."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.model_service.clients import GREY_IMAGE
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.sockets import read_until_closed
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
TIMEOUT_SECONDS = 1.0
MAX_CONNECTIONS = 3
PREDICT_PATH = f"/v1/models/{SEED_MODEL_NAME}:predict"


@pytest.fixture(scope="module")
def server(logs_dir: Path) -> Iterator[RunningModelServer]:
    """Short request timeouts and a small connection cap, so the tests can watch them act."""
    server = start_model_server(
        SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir,
        f"--rest_api_timeout_in_ms={int(TIMEOUT_SECONDS * 1000)}",
        f"--rest_api_max_connections={MAX_CONNECTIONS}")
    yield server
    server.stop()


@pytest.fixture
def still_serves(server, reference_predict):
    def check() -> None:
        reply = httpx.post(server.rest_url + PREDICT_PATH,
                           json={"instances": GREY_IMAGE.tolist()}, timeout=30)
        assert reply.status_code == 200, reply.text
        predictions = np.array(reply.json()["predictions"], np.float32)
        assert np.max(np.abs(predictions - reference_predict(GREY_IMAGE))) <= 1e-5
    return check


def connect(server: RunningModelServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"instances": ' + b"[" * 5_000 + b"0.5" + b"]" * 5_000 + b"}",
    b'{"instances": ' + b"[" * 900 + b"0.5" + b"]" * 900 + b"}",  # parses; too deep a tensor
    b'{"inputs": ' + b'{"a": ' * 5_000 + b"1" + b"}" * 5_000 + b"}",
], ids=["nested-lists", "nested-instances", "nested-objects", "rank-900"])
def test_deeply_nested_json_is_a_400(server, still_serves, body):
    reply = httpx.post(server.rest_url + PREDICT_PATH, content=body, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]
    still_serves()


@pytest.mark.parametrize("body", [b"\xff\xfe not utf-8", b'{"instances": [0.5,', b"null", b""],
                         ids=["not-utf8", "truncated", "null", "empty"])
def test_malformed_json_is_a_400(server, still_serves, body):
    reply = httpx.post(server.rest_url + PREDICT_PATH, content=body, timeout=30)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]
    still_serves()


def test_garbage_instead_of_http_is_refused(server, still_serves):
    with connect(server) as sock:
        sock.sendall(bytes(range(256)) * 16 + b"\r\n\r\n")
        reply = read_until_closed(sock, 10)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
    still_serves()


def test_a_header_block_growing_past_the_limit_is_refused(server, still_serves):
    """Header bytes are buffered up to 16 KiB while the block is incomplete, not without end."""
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(f"GET /v1/models/{SEED_MODEL_NAME} HTTP/1.1\r\nHost: x\r\n".encode()
                         + b"X-Filler: " + b"a" * 100_000)  # no end of the header block
        reply = read_until_closed(sock, 10)
    assert reply.startswith(b"HTTP/1.1 4"), reply[:100]
    still_serves()


def test_a_body_over_the_cap_is_a_413_before_it_is_read(server, still_serves):
    with connect(server) as sock:
        sock.sendall(f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {1 << 30}\r\n\r\n".encode())
        assert read_until_closed(sock, 10).startswith(b"HTTP/1.1 413")
    still_serves()


@pytest.mark.parametrize("path", [f"/v1/models/{SEED_MODEL_NAME}/metadata",
                                  f"/v1/models/{SEED_MODEL_NAME}",
                                  f"/v1/models/{SEED_MODEL_NAME}:classify"],
                         ids=["metadata", "status", "classify"])
def test_a_refused_post_is_answered_before_its_body_is_read(server, still_serves, path):
    """The body never comes: waiting for it would end in the body timeout's 408."""
    with connect(server) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 1000000\r\nConnection: close\r\n\r\n".encode())
        reply = read_until_closed(sock, TIMEOUT_SECONDS + 5)
    assert reply.startswith((b"HTTP/1.1 405", b"HTTP/1.1 501")), reply[:200]
    assert b'"error"' in reply
    still_serves()


def test_silent_and_trickling_clients_are_cut_off(server, still_serves):
    """Neither completes its headers: one sends nothing, one a byte every 0.2 s (which a
    timeout on reads alone would never end)."""
    with connect(server) as silent, connect(server) as trickling:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for byte in f"GET /v1/models/{SEED_MODEL_NAME} HTTP/1.1\r\nHost: x\r\n".encode():
                trickling.sendall(bytes([byte]))
                time.sleep(0.2)
        read_until_closed(trickling, TIMEOUT_SECONDS + 5)
        read_until_closed(silent, TIMEOUT_SECONDS + 5)
    still_serves()


def test_a_slow_body_gets_a_408(server, still_serves):
    with connect(server) as sock:
        sock.sendall(f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 1000\r\n\r\n{".encode())  # and 999 bytes never come
        reply = read_until_closed(sock, TIMEOUT_SECONDS + 5)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"error"' in reply
    still_serves()


def test_connections_over_the_cap_get_503_and_the_cap_frees_up(server, still_serves):
    status_url = f"{server.rest_url}/v1/models/{SEED_MODEL_NAME}"
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        # Once the server has accepted the held connections (a moment after connect returns).
        wait_until(lambda: httpx.get(status_url, timeout=10).status_code == 503, 30,
                   "a 503 with the connection cap reached")
    finally:
        for sock in held:
            sock.close()
    # Once the server has seen them close.
    wait_until(lambda: httpx.get(status_url, timeout=10).status_code == 200, 30,
               "a 200 after the held connections closed")
    still_serves()


def test_the_listen_backlog_is_not_five(server):
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{server.rest_port}"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert int(listening[2]) >= 1024, listening  # Send-Q of a listening socket: its backlog
