"""Cap request bodies while they arrive: an oversize body is never buffered, only counted."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import ProblemError, problem_response
from app.core.request_id import request_id_of


class BodyTooLarge(ProblemError):
    """The request body is (or declares to be) larger than MAX_UPLOAD_BYTES."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, "body_too_large",
                         f"The request body exceeds the upload limit of {max_bytes:,} bytes; "
                         "send a smaller photo.",
                         title="Request body too large", headers={"Connection": "close"})


class BodySizeLimitMiddleware:
    """Rejects a declared Content-Length over the cap at once; otherwise counts received bytes
    and raises BodyTooLarge from `receive` the moment the count passes the cap. `path_caps`
    gives paths (matched by their end, so any ROOT_PATH prefix works) a cap of their own."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 path_caps: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.path_caps = dict(path_caps or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = next((cap for path, cap in self.path_caps.items()
                          if scope["path"].endswith(path)), self.default_max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._reject(scope, receive, send, max_bytes)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # Normally the app's own ProblemError handler answers; this covers code that reads
            # the body outside a route (none today) so the cap can never turn into a 500.
            if response_started:
                raise
            await self._reject(scope, receive, send, max_bytes)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(BodyTooLarge(max_bytes), request_id_of(scope))
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server rejects these before the app sees them
    return None
