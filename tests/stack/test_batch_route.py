"""The batch endpoint through Traefik: its own body cap (MAX_BATCH_BYTES) at the proxy."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.local_stack import API_HOST, LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

BATCH_CAP = 16 * 1024 * 1024
SINGLE_CAP = 10 * 1024 * 1024
MAX_FILES = 16


def api_saw(stack: LocalStack, probe: str) -> bool:
    return any(probe in line for line in stack.log().splitlines() if line.startswith("api "))


def test_a_batch_over_the_single_photo_cap_passes_the_proxy(local_stack: LocalStack,
                                                            leaf_photo_paths: list[Path]) -> None:
    """11 MiB in one batch: over upload-cap, under the batch route's own cap."""
    padded = leaf_photo_paths[0].read_bytes() + b"\0" * (SINGLE_CAP + 1024 * 1024)
    reply = local_stack.post(API_HOST, "/v1/predict/images", files=[
        ("images", ("a.jpg", padded, "image/jpeg")),
        ("images", ("b.jpg", leaf_photo_paths[1].read_bytes(), "image/jpeg"))])
    assert reply.status_code == 200, reply.text
    assert [("prediction" in r) for r in reply.json()["results"]] == [True, True]


def test_a_batch_over_its_cap_is_a_413_problem_at_the_proxy(local_stack: LocalStack) -> None:
    probe = uuid.uuid4().hex
    reply = local_stack.post(API_HOST, f"/v1/predict/images?probe={probe}", files=[
        ("images", ("big.jpg", b"\xff\xd8\xff" + b"\0" * BATCH_CAP, "image/jpeg"))])
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["code"] == "body_too_large"
    assert str(BATCH_CAP) in problem["detail"]
    assert not api_saw(local_stack, probe)  # Traefik refused it; the API never saw it


def test_too_many_photos_are_a_413_problem_at_the_proxy(local_stack: LocalStack,
                                                        leaf_photo_paths: list[Path]) -> None:
    probe = uuid.uuid4().hex
    photo = leaf_photo_paths[1].read_bytes()
    reply = local_stack.post(API_HOST, f"/v1/predict/images?probe={probe}", files=[
        ("images", (f"{i}.jpg", photo, "image/jpeg")) for i in range(MAX_FILES + 1)])
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "too_many_images"
    assert f"at most {MAX_FILES} per request" in reply.json()["detail"]
    assert not api_saw(local_stack, probe)  # the proxy counted and refused; the API never saw it


def test_the_proxy_passes_a_full_batch_and_what_it_cannot_parse(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[1].read_bytes()
    reply = local_stack.post(API_HOST, "/v1/predict/images", files=[
        ("images", (f"{i}.jpg", photo, "image/jpeg")) for i in range(MAX_FILES)])
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["results"]) == MAX_FILES
    # A body the proxy cannot parse goes on unchanged: the API's own 422 answers it (the API's
    # problem documents carry the request id; the proxy's do not).
    reply = local_stack.post(API_HOST, "/v1/predict/images", content=b"--x\r\nbroken",
                             headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert reply.status_code == 422
    assert reply.json()["request_id"] == reply.headers["x-request-id"]
