"""Upload caps at the proxy, and the proxy's own errors as problem documents."""

from __future__ import annotations

import struct
import uuid
import zlib
from pathlib import Path

import pytest

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

PROBLEM = "application/problem+json"
DEFAULT_CAP = 10 * 1024 * 1024


def api_log_lines(stack: LocalStack) -> list[str]:
    return [line for line in stack.log().splitlines() if line.startswith("api ")]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with one tiny (short) IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("host, path", [(API_HOST, "/predict/image"),
                                        (UI_HOST, "/api/predict/image")])
def test_an_oversize_upload_is_a_413_problem_at_the_proxy(local_stack: LocalStack,
                                                          host: str, path: str) -> None:
    probe = uuid.uuid4().hex  # the request id: the API logs it with every line of a request
    reply = local_stack.predict(host, path, b"\xff\xd8\xff" + b"\0" * DEFAULT_CAP,
                                headers={"X-Request-ID": probe})
    assert reply.status_code == 413
    assert reply.headers["content-type"] == PROBLEM
    problem = reply.json()
    assert problem["code"] == "body_too_large"
    assert problem["status"] == 413
    assert str(DEFAULT_CAP) in problem["detail"]
    assert {"type", "title", "status", "detail", "code"} <= problem.keys()
    # Traefik refused it: the API never saw the request (its access log names every request).
    assert not [line for line in api_log_lines(local_stack) if probe in line]


def test_the_api_log_check_sees_requests_that_pass(local_stack: LocalStack,
                                                   leaf_photo_paths: list[Path]) -> None:
    """Control for the test above: a request that gets through is in the API's log."""
    probe = uuid.uuid4().hex
    reply = local_stack.predict(API_HOST, "/predict/image", leaf_photo_paths[0],
                                headers={"X-Request-ID": probe})
    assert reply.status_code == 200
    assert [line for line in api_log_lines(local_stack) if probe in line]


def test_a_body_just_under_the_cap_reaches_the_api(local_stack: LocalStack) -> None:
    """Not a proxy 413: the API answers (here: not an image) after the proxy let it through."""
    reply = local_stack.post(API_HOST, "/predict/image", files={
        "image_to_predict": ("x.jpg", b"\0" * (DEFAULT_CAP - 4096), "image/jpeg")})
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["code"] != "body_too_large"
    assert "request_id" in reply.json()  # only the API sets request ids


def test_the_apis_own_413_passes_through_untouched(local_stack: LocalStack) -> None:
    """The proxy rewrites only its own plain-text errors: the API's image_too_large (same 413
    status) keeps its code and detail."""
    reply = local_stack.predict(API_HOST, "/predict/image", png_header_only(20000, 20000),
                                content_type="image/png")
    assert reply.status_code == 413
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["code"] == "image_too_large"


def test_the_cap_follows_max_upload_bytes(local_stack_factory, leaf_photo_paths: list[Path]
                                          ) -> None:
    """MAX_UPLOAD_BYTES sets the proxy's cap and the API's to the same number."""
    photo = leaf_photo_paths[0].read_bytes()
    cap = len(photo) // 2
    stack = local_stack_factory(env={"MAX_UPLOAD_BYTES": str(cap)})
    reply = stack.predict(API_HOST, "/predict/image", photo)
    assert reply.status_code == 413
    assert reply.headers["content-type"] == PROBLEM
    assert reply.json()["code"] == "body_too_large"
    assert str(cap) in reply.json()["detail"]
    assert "request_id" not in reply.json()  # answered by the proxy, not by the API


def test_a_dead_api_is_a_problem_document(local_stack_factory,
                                          leaf_photo_paths: list[Path]) -> None:
    stack = local_stack_factory(keep_going=True)
    assert stack.predict(UI_HOST, "/api/predict/image", leaf_photo_paths[0]).status_code == 200
    stack.stop_service("api")
    for host, path in ((UI_HOST, "/api/predict/image"), (API_HOST, "/predict/image")):
        reply = stack.predict(host, path, leaf_photo_paths[0])
        assert reply.status_code == 502
        assert reply.headers["content-type"] == PROBLEM
        assert reply.json()["code"] == "upstream_unavailable"
    # The page itself is still served, and the rest of the stack still runs.
    assert stack.get(UI_HOST, "/").status_code == 200
    assert stack.alive()
