"""Abuse limits at the edge (Traefik, traefik/traefik.yml + dynamic.yml) through run-local: each
test sends the abuse pattern, shows the limit acting, and shows a normal client still served.
Abusive clients send from their own loopback addresses (127.0.0.2, ...), because the per-client
limits key on the TCP peer address."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack, start_local_stack
from tests.support.sockets import read_until_closed
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

PROBLEM = "application/problem+json"
TEST_READ_TIMEOUT = 3  # seconds; the shipped readTimeout (50 s) is in traefik/traefik.yml
# How long after TEST_READ_TIMEOUT a cut connection may take to close, on a loaded machine. Only
# the timeout can close it (the trickles below would last 40 min), so the margin is generous:
# it tells "cut by the timeout" from "never cut", not how precise the timer is.
CLOSE_MARGIN = 30


def client(address: str, timeout: float = 30.0) -> httpx.Client:
    """An HTTP client whose connections come from `address` (a 127.0.0.0/8 address)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout)


def post_from(http: httpx.Client, stack: LocalStack, host: str, path: str, data: bytes,
              **kwargs) -> httpx.Response:
    return http.post(f"http://127.0.0.1:{stack.port}{path}", headers={"Host": host, **kwargs.pop(
        "headers", {})}, files={"image_to_predict": ("leaf.jpg", data, "image/jpeg")}, **kwargs)


def connect(stack: LocalStack, source: str = "127.0.0.1", timeout: float = 30) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=timeout,
                                    source_address=(source, 0))
    return sock


def upload_head(host: str, path: str, length: int, probe: str = "") -> bytes:
    """Request line and headers of a multipart upload whose body is `length` bytes."""
    return (f"POST {path}?probe={probe} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def api_saw(stack: LocalStack, probe: str) -> bool:
    return any(line.startswith("api ") and probe in line for line in stack.log().splitlines())


def assert_served(stack: LocalStack, photo: Path, source: str = "127.0.0.1") -> None:
    """A normal client gets its prediction."""
    with client(source) as http:
        reply = post_from(http, stack, API_HOST, "/predict/image", photo.read_bytes())
    assert reply.status_code == 200, reply.text


# -- h2c, framing, headers --------------------------------------------------------------------

def test_cleartext_http2_is_not_spoken(local_stack: LocalStack) -> None:
    """No h2c on the public entry point: the HTTP/2 preface gets no SETTINGS frame, and an
    Upgrade: h2c request is served as plain HTTP/1.1."""
    with connect(local_stack, timeout=5) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        answer = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 "), answer[:60]
    upgrade = local_stack.get(API_HOST, "/readyz", headers={
        "Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
        "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
    assert upgrade.status_code == 200 and upgrade.http_version == "HTTP/1.1"


@pytest.mark.parametrize("host, path", [(API_HOST, "/predict/image"),
                                        (UI_HOST, "/api/predict/image")])
def test_a_malformed_chunked_body_is_a_400_problem(local_stack: LocalStack,
                                                   leaf_photo_paths: list[Path], host: str,
                                                   path: str) -> None:
    for body in (b"zz\r\nabc\r\n0\r\n\r\n",  # chunk size not hex
                 b"5\r\nabc\r\n0\r\n\r\n",  # chunk shorter than its size
                 b"3\r\nabcXY0\r\n\r\n"):  # no CRLF after the chunk
        with connect(local_stack, source="127.0.0.11", timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                         f"Content-Type: image/jpeg\r\nConnection: close\r\n\r\n".encode() + body)
            sock.shutdown(socket.SHUT_WR)
            answer = read_until_closed(sock, 10)
        head, _, document = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), (body, head)
        assert b"Content-Type: application/problem+json" in head
        assert b'"code":"malformed_request"' in document
    assert_served(local_stack, leaf_photo_paths[0])


def test_oversized_headers_are_refused_before_the_api(local_stack: LocalStack) -> None:
    probe = uuid.uuid4().hex
    big = local_stack.get(API_HOST, f"/readyz?probe={probe}", headers={"X-Filler": "a" * 20000})
    assert big.status_code == 431
    assert not api_saw(local_stack, probe)
    # Ordinary headers, even a few KiB of them, pass.
    assert local_stack.get(API_HOST, "/readyz", headers={"X-Filler": "a" * 4000}).status_code == 200


def test_a_header_the_proxy_accepts_is_accepted_behind_it(local_stack: LocalStack) -> None:
    """A 10 KB header line is under Traefik's cap: nginx must not refuse it with its own 400."""
    filler = {"X-Filler": "a" * 10_000}
    assert local_stack.get(UI_HOST, "/", headers=filler).status_code == 200
    assert local_stack.get(API_HOST, "/readyz", headers=filler).status_code == 200


# -- per-client limits on the prediction routes ------------------------------------------------

def test_a_flood_from_one_address_is_rate_limited_others_are_served(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    statuses = []
    limited = None
    with client("127.0.0.2") as flood:
        for index in range(60):
            # X-Forwarded-For cannot make one client look like many.
            reply = post_from(flood, local_stack, API_HOST, "/predict/image", b"not a photo",
                              headers={"X-Forwarded-For": f"10.0.0.{index}"})
            statuses.append(reply.status_code)
            if reply.status_code == 429 and limited is None:
                limited = reply
        assert_served(local_stack, leaf_photo_paths[0], source="127.0.0.3")
    # The burst passes (the API answers them: not an image), then the limit acts.
    assert all(400 <= status < 500 and status != 429 for status in statuses[:15]), statuses
    assert 429 in statuses
    assert limited is not None
    assert limited.headers["content-type"] == PROBLEM
    assert limited.json()["code"] == "rate_limited"
    assert limited.json()["status"] == 429
    assert int(limited.headers["retry-after"]) >= 1
    # The rest of the API is not rate limited.
    assert local_stack.get(API_HOST, "/readyz").status_code == 200


def test_one_address_gets_a_few_requests_at_a_time(local_stack: LocalStack,
                                                   leaf_photo_paths: list[Path]) -> None:
    """Stalled uploads count: the fifth one from the same address is refused at once."""
    stalled = []
    try:
        for _ in range(4):
            sock = connect(local_stack, source="127.0.0.4")
            sock.sendall(upload_head(API_HOST, "/predict/image", 100_000) + b"--b\r\n")
            stalled.append(sock)
        photo = leaf_photo_paths[0].read_bytes()
        with client("127.0.0.4", timeout=10) as same:
            # Refused once Traefik counts the four (it may see the last of them a moment later).
            refused = wait_until(
                lambda: (r := post_from(same, local_stack, API_HOST, "/predict/image", photo)
                         ).status_code == 429 and r, 30, "the fifth upload refused")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] == "too_many_in_flight"
        assert refused.headers["retry-after"] == "1"
        assert_served(local_stack, leaf_photo_paths[0], source="127.0.0.5")
    finally:
        for sock in stalled:
            sock.close()
    # Served again once Traefik has seen the stalled connections close.
    with client("127.0.0.4") as same:
        wait_until(lambda: post_from(same, local_stack, API_HOST, "/predict/image",
                                     leaf_photo_paths[0].read_bytes()).status_code == 200,
                   30, "an upload served again from the same address")


# -- slow and idle clients (readTimeout shortened for the test) ---------------------------------

@pytest.fixture(scope="module")
def short_timeout_stack(logs_dir: Path) -> Iterator[LocalStack]:
    """run-local with readTimeout shortened (RUN_LOCAL_READ_TIMEOUT) for this module."""
    stack = start_local_stack(logs_dir, env={"RUN_LOCAL_READ_TIMEOUT": str(TEST_READ_TIMEOUT)})
    yield stack
    stack.stop()


def trickle(sock: socket.socket, data: bytes, every: float, stop: threading.Event) -> None:
    """Send data one byte per `every` seconds until it is sent, stopped, or refused."""
    for byte in data:
        if stop.wait(every):
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return


def test_a_one_byte_a_second_upload_is_cut_with_408(short_timeout_stack: LocalStack,
                                                    leaf_photo_paths: list[Path]) -> None:
    stack = short_timeout_stack
    probe = uuid.uuid4().hex
    stop = threading.Event()
    with connect(stack, source="127.0.0.6") as sock:
        sock.sendall(upload_head(API_HOST, "/predict/image", 5000, probe))
        sender = threading.Thread(target=trickle, args=(sock, b"x" * 5000, 0.5, stop))
        sender.start()
        try:
            assert_served(stack, leaf_photo_paths[0])  # meanwhile, a normal client
            answer = read_until_closed(sock, TEST_READ_TIMEOUT + CLOSE_MARGIN)
        finally:
            stop.set()
            sender.join()
    head, _, document = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"application/problem+json" in head
    assert b'"code":"request_timeout"' in document
    assert not api_saw(stack, probe)  # the API never held the slow upload


@pytest.mark.parametrize("pattern", ["idle", "slow headers"])
def test_idle_and_slowloris_connections_are_closed(short_timeout_stack: LocalStack,
                                                   leaf_photo_paths: list[Path],
                                                   pattern: str) -> None:
    stack = short_timeout_stack
    stop = threading.Event()
    socks = [connect(stack, source=f"127.0.0.{7 + i}") for i in range(3)]
    senders = []
    if pattern == "slow headers":
        for sock in socks:
            head = b"GET /readyz HTTP/1.1\r\nHost: api.service.localhost\r\nX-Slow: " + b"a" * 60
            senders.append(threading.Thread(target=trickle, args=(sock, head, 0.5, stop)))
            senders[-1].start()
    try:
        assert_served(stack, leaf_photo_paths[0])
        answers = [read_until_closed(sock, TEST_READ_TIMEOUT + CLOSE_MARGIN) for sock in socks]
    finally:
        stop.set()
        for sender in senders:
            sender.join()
        for sock in socks:
            sock.close()
    for answer in answers:
        if pattern == "idle":
            assert answer == b""  # no request, nothing to answer: the connection is closed
        else:  # Go's server answers an unfinished header 400 and closes (never a 499)
            assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 408 ")), answer[:40]
