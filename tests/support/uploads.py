"""Multipart bodies built by hand (exact bytes, any malformation a test needs), and uploads as
a raw HTTP/1.1 client with `Expect: 100-continue` (as curl sends bodies over 1 MiB): the server
asks for the body only once it reads it, so a test can hold an upload half-sent, and an upload
refused before its body (a 429 at the proxy) is answered cleanly instead of being reset half-way
through 10 MB."""

from __future__ import annotations

import socket
import uuid


def multipart(*parts: tuple[str, str | None, bytes] | tuple[str, str | None, bytes, str]
              ) -> tuple[bytes, str]:
    """A hand-made multipart/form-data body and its content type. Each part is (field name,
    filename or None for a text field, data[, the part's Content-Type])."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, filename, data, *content_type in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        if filename:
            head += f'; filename="{filename}"'
        if content_type:
            head += f"\r\nContent-Type: {content_type[0]}"
        chunks.append(f"{head}\r\n\r\n".encode() + data + b"\r\n")
    return (b"".join(chunks) + f"--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}")


def multipart_photo(data: bytes, field: str = "image_to_predict",
                    filename: str = "leaf.jpg") -> tuple[bytes, str]:
    """A multipart/form-data body with `data` as the one file part, and its content type."""
    return multipart((field, filename, data, "image/jpeg"))


class RawUpload:
    """One POST on its own connection from `address` to 127.0.0.1:port, step by step: the
    headers are sent at once; `response()` reads the next answer (a 100 Continue too), `send()`
    a part of the body."""

    def __init__(self, port: int, host: str, path: str, body: bytes, content_type: str,
                 address: str = "127.0.0.1", timeout: float = 60) -> None:
        self.body = body
        self.buffer = b""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((address, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed inside a response ({self.buffer[:200]!r})")
        self.buffer += chunk

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response: status, headers (lower-case names), body (Content-Length)."""
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines)}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def send(self, start: int = 0, end: int | None = None) -> None:
        self.sock.sendall(self.body[start:end])

    def exchange(self) -> tuple[int, dict[str, str], bytes]:
        """The whole upload: the body only if asked for; the final answer."""
        status, headers, body = self.response()
        if status != 100:
            return status, headers, body
        self.send()
        return self.response()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawUpload:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
