"""The proxy's global cap on large uploads (UPLOAD_SLOTS, traefik/dynamic.yml): more maximum-size
uploads at once than the cap, from distinct loopback addresses (the per-client limits do not
act), get clean 429 problems with Retry-After before sending their bodies, while a normal
client is still served and the uploads holding the slots are answered.

The uploads are raw HTTP/1.1 with `Expect: 100-continue` (tests/support/uploads.py): an upload
can hold its slot half-sent, and a refused one is told so before it sends 10 MiB."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.edge_config import dynamic_default
from tests.support.local_stack import API_HOST, LocalStack
from tests.support.uploads import RawUpload, multipart_photo

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
SLOTS = int(dynamic_default("UPLOAD_SLOTS"))


def maximum_upload(photo: bytes) -> tuple[bytes, str]:
    """A multipart body just under MAX_UPLOAD_BYTES: the photo with noise appended (a JPEG
    decoder stops at its end marker, so the API answers it), and its content type."""
    return multipart_photo(photo + os.urandom(MAX_UPLOAD_BYTES - 1024 - len(photo)))


def start_upload(stack: LocalStack, address: str, body: bytes, content_type: str) -> RawUpload:
    return RawUpload(stack.port, API_HOST, "/predict/image", body, content_type, address)


def assert_refused(upload: RawUpload, status: int, code: str, *, retry: bool = True) -> None:
    """The proxy answered `upload` with a problem document (`code`) instead of taking its
    body; with `retry`, it says when to try again."""
    got, headers, problem = upload.response()
    assert got == status, (got, problem)
    assert headers["content-type"] == "application/problem+json"
    assert f'"code":"{code}"' in problem.decode().replace(" ", "")
    if retry:
        assert int(headers["retry-after"]) >= 1


def test_more_large_uploads_than_the_slots_are_refused_cleanly_and_others_still_served(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0].read_bytes()
    body, content_type = maximum_upload(photo)
    half = len(body) // 2
    uploads: list[RawUpload] = []
    try:
        # SLOTS uploads from SLOTS addresses: each is asked for its body and stalls half-way.
        holders = [start_upload(local_stack, f"127.0.0.{10 + i}", body, content_type)
                   for i in range(SLOTS)]
        uploads += holders
        for holder in holders:
            assert holder.response()[0] == 100
            holder.send(0, half)
        # More at the same time, each from an address of its own: refused before their bodies.
        extras = [start_upload(local_stack, f"127.0.0.{40 + i}", body, content_type)
                  for i in range(SLOTS + 2)]
        uploads += extras
        for extra in extras:
            assert_refused(extra, 429, "uploads_busy")
        # A normal client (a page-sized photo, buffered in memory) is served meanwhile.
        normal = httpx.post(f"http://127.0.0.1:{local_stack.port}/predict/image",
                            headers={"Host": API_HOST}, timeout=30,
                            files={"image_to_predict": ("leaf.jpg", photo, "image/jpeg")})
        assert normal.status_code == 200, normal.text
        # The uploads holding the slots finish and are answered, never a proxy 500.
        for holder in holders:
            holder.send(half)
            status, _, answer = holder.response()
            assert status == 200, answer[:500]
    finally:
        for upload in uploads:
            upload.close()
    # The slots are free again: a maximum-size upload is taken.
    transport = httpx.HTTPTransport(local_address="127.0.0.60")
    with httpx.Client(transport=transport, timeout=60) as client:
        again = client.post(f"http://127.0.0.1:{local_stack.port}/predict/image",
                            headers={"Host": API_HOST, "Content-Type": content_type},
                            content=body)
    assert again.status_code == 200, again.text


def test_one_address_holds_at_most_its_share_of_the_slots(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    # Issue 20: one address took every slot within its own in-flight limit, and every other
    # client's large upload got 429 uploads_busy.
    photo = leaf_photo_paths[0].read_bytes()
    body, content_type = maximum_upload(photo)
    half = len(body) // 2
    uploads: list[RawUpload] = []
    try:
        first = start_upload(local_stack, "127.0.0.70", body, content_type)
        uploads.append(first)
        assert first.response()[0] == 100
        first.send(0, half)
        second = start_upload(local_stack, "127.0.0.70", body, content_type)
        uploads.append(second)
        assert_refused(second, 429, "too_many_uploads")
        # Another address still gets a slot.
        other = start_upload(local_stack, "127.0.0.71", body, content_type)
        uploads.append(other)
        assert other.response()[0] == 100
        for upload in (first, other):
            upload.send(half if upload is first else 0)
            status, _, answer = upload.response()
            assert status == 200, answer[:500]
    finally:
        for upload in uploads:
            upload.close()


def test_a_trickling_body_loses_its_slot_long_before_the_read_timeout(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    # A maximum Content-Length, then one byte every half second: cut with 408 upload_too_slow
    # once the grace period is over, not after the entry point's 50 s readTimeout (the socket
    # gives up waiting for the answer after 25 s), and its slot is free again.
    photo = leaf_photo_paths[0].read_bytes()
    body, content_type = maximum_upload(photo)
    trickler = RawUpload(local_stack.port, API_HOST, "/predict/image", body, content_type,
                         "127.0.0.80", timeout=25)
    stop = threading.Event()

    def trickle() -> None:
        for offset in range(60):
            if stop.wait(0.5):
                return
            try:
                trickler.send(offset, offset + 1)
            except OSError:
                return  # cut: the proxy closed the connection

    sender = threading.Thread(target=trickle, daemon=True)
    try:
        assert trickler.response()[0] == 100
        sender.start()
        assert_refused(trickler, 408, "upload_too_slow", retry=False)
    finally:
        stop.set()
        sender.join(5)
        trickler.close()
    # Its slot (the address's one) is free: the same address's next upload is taken.
    with start_upload(local_stack, "127.0.0.80", body, content_type) as again:
        assert again.exchange()[0] == 200
