"""MAX_UPLOAD_BYTES is enforced while the body arrives, never by buffering an oversize body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.types import Message, Receive, Scope, Send

from app.core.body_limit import BodySizeLimitMiddleware
from app.core.problems import ProblemError, problem_response
from tests.api_service.conftest import FIELD, PROBLEM_JSON, ApiServer, api_env, start_api

CAP = 1000


class Upload:
    """The ASGI side of a client sending `chunks`, recording how much the app pulled."""

    def __init__(self, chunks: list[bytes], content_length: int | None = None) -> None:
        self.chunks = chunks
        self.pulled = 0
        headers = [(b"content-type", b"application/octet-stream")]
        if content_length is not None:
            headers.append((b"content-length", str(content_length).encode()))
        self.scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        chunk = self.chunks[self.pulled]
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < len(self.chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return self.sent[0]["status"]

    @property
    def body(self) -> dict:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


async def read_all_then_ok(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body, as the multipart parser does; answers ProblemErrors."""
    try:
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    except ProblemError as error:
        await problem_response(error)(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def read_all_unguarded(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that lets the cap's exception escape: the middleware still answers 413."""
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.anyio
@pytest.mark.parametrize("app", [read_all_then_ok, read_all_unguarded])
async def test_streamed_body_is_cut_at_the_first_chunk_past_the_cap(app) -> None:
    upload = Upload([b"x" * 400] * 100)  # 40 kB, no Content-Length (chunked)
    await BodySizeLimitMiddleware(app, max_bytes=CAP)(upload.scope, upload.receive, upload.send)
    assert upload.pulled == 3  # 1200 bytes > 1000: nothing after that chunk was read
    assert upload.status == 413
    assert upload.body["code"] == "body_too_large"


@pytest.mark.anyio
async def test_declared_oversize_body_is_refused_before_reading_anything() -> None:
    upload = Upload([b"x" * 400] * 3, content_length=CAP + 1)
    await BodySizeLimitMiddleware(read_all_then_ok, max_bytes=CAP)(
        upload.scope, upload.receive, upload.send)
    assert upload.pulled == 0
    assert upload.status == 413
    assert (b"content-type", PROBLEM_JSON.encode()) in upload.sent[0]["headers"]


@pytest.mark.anyio
async def test_body_of_exactly_the_cap_passes() -> None:
    upload = Upload([b"x" * 500, b"x" * 500], content_length=CAP)
    await BodySizeLimitMiddleware(read_all_then_ok, max_bytes=CAP)(
        upload.scope, upload.receive, upload.send)
    assert upload.status == 200


@pytest.fixture(scope="module")
def small_cap_api(seed_model_server, logs_dir: Path) -> Iterator[ApiServer]:
    server = start_api(logs_dir, api_env(seed_model_server, MAX_UPLOAD_BYTES=200_000),
                       name="api-small-cap")
    yield server
    server.stop()


@pytest.mark.slow
def test_real_server_refuses_a_declared_oversize_upload(small_cap_api: ApiServer,
                                                        leaf_photo_paths: list[Path]) -> None:
    with small_cap_api.client() as client:
        reply = client.post("/predict/image",
                            files={FIELD: ("big.jpg", b"\xff\xd8\xff" + b"x" * 200_000)})
        assert (reply.status_code, reply.headers["content-type"]) == (413, PROBLEM_JSON)
        assert reply.json()["code"] == "body_too_large"
        assert "200,000 bytes" in reply.json()["detail"]
        photo = leaf_photo_paths[0]  # ~50 kB: under the cap
        assert client.post("/predict/image", files={FIELD: (photo.name, photo.read_bytes())}
                           ).status_code == 200


@pytest.mark.slow
def test_real_server_stops_reading_a_chunked_upload_past_the_cap(
        small_cap_api: ApiServer) -> None:
    sent = 0
    total = 64 * 1024 * 1024

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield (f'--b\r\nContent-Disposition: form-data; name="{FIELD}"; filename="a.jpg"\r\n\r\n'
               ).encode()
        while sent < total:
            sent += 64 * 1024
            yield b"\xff" * (64 * 1024)
        yield b"\r\n--b--\r\n"

    with small_cap_api.client() as client:
        reply = client.post("/predict/image", content=body(),
                            headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert reply.status_code == 413 and reply.json()["code"] == "body_too_large"
        assert sent < total // 4, "the server read (or the client sent) far past the cap"
        assert client.get("/healthz").status_code == 200
