"""Raw HTTP over a socket, for tests that send what an HTTP client library would not."""

from __future__ import annotations

import contextlib
import socket


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or the socket times out)."""
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data
