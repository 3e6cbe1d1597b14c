"""X-Request-ID: take a sane one from the client or proxy, else make one; echo it on every reply."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
GRPC_METADATA_KEY = "x-request-id"  # gRPC metadata keys are lower case
# Printable, log-safe and short: anything else is replaced, never echoed back.
_SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# The id of the request this task serves: log records and the gRPC metadata read it.
CURRENT: ContextVar[str | None] = ContextVar("request_id", default=None)


def choose_request_id(incoming: str | None) -> str:
    """The incoming id when it is sane, otherwise a fresh random one."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def request_id_of(scope: Scope) -> str | None:
    """The id RequestIdMiddleware stored for this request (None outside a request)."""
    value = scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    """Stores the request id in scope["state"] and adds the X-Request-ID response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((value.decode("latin-1") for name, value in scope["headers"]
                         if name == b"x-request-id"), None)
        request_id = choose_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = CURRENT.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CURRENT.reset(token)
