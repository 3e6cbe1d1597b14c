"""The REST port on uvicorn: a listen backlog, a cap on connections, and timeouts on every phase.

uvicorn (the server the API runs too) brings HTTP/1.1 parsing with h11 and its header size limit,
the keep-alive timeout and a connection cap; this module adds the one timeout uvicorn lacks, for a
request's headers (a client that opens a connection and sends nothing, or trickles its headers,
is closed), and runs the server on its own event loop in a thread beside gRPC. The body has its
own deadline in the app (rest.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 30.0  # seconds from connection (or last response) to full headers
    keep_alive_timeout: int = 5  # idle seconds between requests on a connection
    max_connections: int = 64  # connections (and requests) at once; beyond: 503
    backlog: int = 1024  # connections the kernel queues before they are accepted
    max_header_bytes: int = 16 * 1024


def protocol_with_header_timeout(timeout: float) -> type[H11Protocol]:
    class H11WithHeaderTimeout(H11Protocol):
        """uvicorn's h11 protocol; the connection closes if a request's headers are not complete
        `timeout` seconds after it opened or after the previous response."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            # h11 leaves the client IDLE until a request's headers are complete.
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return H11WithHeaderTimeout


class RestServer:
    """uvicorn serving `app` on a socket bound at construction (OSError if the port is taken)."""

    def __init__(self, app: ASGIApp, address: str, port: int, limits: Limits = Limits()) -> None:
        self.socket = socket.create_server((address, port), backlog=limits.backlog)
        config = uvicorn.Config(
            app, http=protocol_with_header_timeout(limits.header_timeout), loop="asyncio",
            lifespan="off", log_config=None, access_log=False, server_header=False,
            timeout_keep_alive=limits.keep_alive_timeout, backlog=limits.backlog,
            limit_concurrency=limits.max_connections,
            h11_max_incomplete_event_size=limits.max_header_bytes,
            timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="rest", daemon=True)

    def start(self) -> RestServer:
        self.thread.start()
        return self

    def stop(self, timeout: float) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.socket.close()
