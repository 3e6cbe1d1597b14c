"""A unary-only gRPC server core: epoll, HTTP/2 (http2.py), gRPC's wire rules (grpc_protocol.py).

Why not grpcio's server: on the 2-core build machine it spent ~0.5 ms of CPU per 270 KB Predict in
thread hand-offs and GIL traffic, which alone broke the "adds <= 1 ms over in-process" budget; an
asyncio loop feeding a worker pool still paid two hand-offs per call (docs/model-server.md).

Threading: every idle thread of the pool waits in one epoll for one event (connections are
one-shot, so a connection is handled by one thread at a time). The thread that reads a complete
request runs the call itself and writes the reply straight to the socket, like gRPC C++'s
synchronous server that TF Serving uses: nothing is handed over, and nothing needs waking, since
the other threads already wait for the next event. Linux wakes the thread that waited last, so in
a quiet spell the same warm thread serves call after call. TensorFlow releases the GIL, so calls
on different threads run in parallel.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import grpc

from model_server import grpc_protocol, http2, monitoring
from model_server.grpc_protocol import CallError, HttpError

log = logging.getLogger("model_server")

# Runs a call's payload; returns (status, message, serialised reply) and never raises.
Handler = Callable[[memoryview | bytes], tuple[grpc.StatusCode, str, bytes]]

RECV_BYTES = 1024 * 1024  # per thread, not per connection
MAX_CONCURRENT_STREAMS = 256  # per connection; a reset stream keeps its slot until its call ends
MAX_UNSENT_BYTES = 4 * 1024 * 1024  # stop reading a client that does not read its replies
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT


@dataclass(eq=False)
class _Call:
    connection: _Connection
    stream_id: int
    handler: Handler
    payload: memoryview | bytes
    deadline: float | None  # time.monotonic()
    request_id: bytes | None = None
    cancelled: bool = False


class _Connection:
    """One client socket. Every use of its HTTP/2 state and socket holds `lock`."""

    def __init__(self, server: GrpcServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.h2 = http2.ServerConnection(max_concurrent_streams=MAX_CONCURRENT_STREAMS,
                                         max_request_body=grpc_protocol.MAX_REQUEST_BODY)
        self.lock = threading.Lock()
        self.unsent = bytearray()
        self.calls: dict[int, _Call] = {}  # queued or running
        self.mask = _IN
        self.closed = False

    def read(self, view: memoryview) -> list[_Call]:
        """Read what the socket has into `view` (the calling thread's buffer: the HTTP/2 layer
        copies what it keeps); the complete requests come back as calls to run."""
        calls: list[_Call] = []
        with self.lock:
            if self.closed:
                return calls
            while True:
                try:
                    size = self.sock.recv_into(view)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._close()
                    return []
                if not size:
                    self._close()
                    return []
                try:
                    events = self.h2.receive(view[:size])
                except http2.ProtocolError as error:
                    log.debug(f"HTTP/2 protocol error from a client: {error}")
                    self._send()
                    self._close()
                    return []
                for event in events:
                    if isinstance(event, http2.Request):
                        call = self._accept(event)
                        if call is not None:
                            calls.append(call)
                    elif isinstance(event, http2.TooLarge):
                        self._answer(event.stream_id, grpc_protocol.error_reply(
                            grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than "
                            f"max (> {grpc_protocol.MAX_MESSAGE_BYTES})"))
                    else:
                        cancelled = self.calls.get(event.stream_id)
                        if cancelled is not None:
                            cancelled.cancelled = True
                if size < len(view):
                    break  # most likely drained; epoll reports the socket again if not
            self._send()
            self._close_if_done()
        return calls

    def _accept(self, request: http2.Request) -> _Call | None:
        try:
            call = grpc_protocol.parse_call(request.headers)
            handler = self.server.handlers.get(call.path)
            if handler is None:
                raise CallError(grpc.StatusCode.UNIMPLEMENTED,
                                "Method not implemented!" if call.path in self.server.unimplemented
                                else "Method not found!")
            payload = grpc_protocol.unary_message(request.body, call.encoding)
        except HttpError as error:
            self._answer(request.stream_id, grpc_protocol.http_error_reply(error.status))
            return None
        except CallError as error:
            self._answer(request.stream_id, grpc_protocol.error_reply(error.code, error.message))
            return None
        deadline = None if call.timeout is None else time.monotonic() + call.timeout
        accepted = _Call(self, request.stream_id, handler, payload, deadline, call.request_id)
        self.calls[request.stream_id] = accepted
        return accepted

    def _answer(self, stream_id: int, headers) -> None:
        self.h2.respond(stream_id, headers)
        self.h2.release(stream_id)

    def finish(self, call: _Call, outcome: tuple[grpc.StatusCode, str, bytes] | None) -> None:
        """Reply (unless the client gave up) and free the call's slot; any thread."""
        with self.lock:
            self.calls.pop(call.stream_id, None)
            self.h2.release(call.stream_id)
            if outcome is not None and not call.cancelled and not self.closed:
                code, message, reply = outcome
                if code is grpc.StatusCode.OK:
                    self.h2.respond(call.stream_id, grpc_protocol.RESPONSE_HEADERS,
                                    grpc_protocol.frame_message(reply), grpc_protocol.OK_TRAILERS)
                else:
                    self.h2.respond(call.stream_id, grpc_protocol.error_reply(code, message))
                self._send()
            self._close_if_done()

    def rearm(self) -> None:
        with self.lock:
            if not self.closed:
                self.server.watch(self.fd, self.mask)

    def writable(self) -> None:
        with self.lock:
            self._send()

    def goaway(self) -> None:
        with self.lock:
            if not self.closed:
                self.h2.goaway()
                self._send()
                self._close_if_done()

    def abort(self) -> None:
        with self.lock:
            self._close()

    def idle(self) -> bool:
        with self.lock:
            return self.closed or (not self.calls and self.h2.idle())

    def _send(self) -> None:
        """Write queued frames now, as far as the socket takes them; epoll reports the rest."""
        if self.closed:
            return
        self.unsent += self.h2.data_to_send()
        if self.unsent:
            try:
                sent = self.sock.send(self.unsent)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close()
                return
            del self.unsent[:sent]
        mask = (_OUT if self.unsent else 0) | (_IN if len(self.unsent) < MAX_UNSENT_BYTES else 0)
        if mask != self.mask:
            self.mask = mask
            self.server.watch(self.fd, mask)  # also re-arms: harmless, reads hold the lock

    def _close_if_done(self) -> None:
        if self.h2.closing and not self.calls and self.h2.idle() and not self.unsent:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for call in self.calls.values():
            call.cancelled = True
        self.server.forget(self)
        self.sock.close()


class GrpcServer:
    """Serves `handlers` ({"/package.Service/Method": handler}) on `threads` threads."""

    def __init__(self, handlers: Mapping[str, Handler], unimplemented: frozenset[str],
                 threads: int) -> None:
        self.handlers = dict(handlers)
        self.unimplemented = unimplemented
        self._epoll = select.epoll()
        # Never drained: once written, every thread in epoll wakes up and sees _stopping.
        self._stop_read, self._stop_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Counts calls waiting in _ready; each thread that reads it takes one.
        self._ready_count = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC | os.EFD_SEMAPHORE)
        self._ready: collections.deque[_Call] = collections.deque()
        self._connections: dict[int, _Connection] = {}
        self._listener: socket.socket | None = None
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"grpc-{i}", daemon=True)
                         for i in range(max(1, threads))]

    def start(self, address: str, port: int) -> None:
        """Bind address:port and serve; RuntimeError if the port cannot be bound."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            listener = socket.create_server((address, port), family=family, backlog=1024,
                                            dualstack_ipv6=address in ("::", "[::]"))
        except OSError as error:
            raise RuntimeError(str(error)) from None
        listener.setblocking(False)
        self._listener = listener
        self._epoll.register(listener.fileno(), _IN)
        self._epoll.register(self._stop_read, _IN)
        self._epoll.register(self._ready_count, _IN)
        for thread in self._threads:
            thread.start()

    # epoll registrations, from any thread (epoll itself is thread-safe)

    def watch(self, fd: int, mask: int) -> None:
        """(Re-)arm a connection: one-shot, so one thread at a time handles its events."""
        with contextlib.suppress(OSError):  # closed meanwhile
            self._epoll.modify(fd, mask | select.EPOLLONESHOT)

    def forget(self, connection: _Connection) -> None:
        self._connections.pop(connection.fd, None)
        with contextlib.suppress(OSError):
            self._epoll.unregister(connection.fd)

    # the threads

    def _work(self) -> None:
        """Every idle thread waits in epoll for one event; the kernel wakes the one that waited
        last, so in a quiet spell the same warm thread serves call after call. A thread that
        reads a complete request runs it itself and writes the reply: no hand-off, and nothing
        to wake, since the other threads are already waiting for the next event."""
        read_buffer = memoryview(bytearray(RECV_BYTES))
        while not self._stopping:
            try:
                events = self._epoll.poll(-1, 1)
            except InterruptedError:
                continue
            for fd, mask in events:
                try:
                    calls = self._handle(fd, mask, read_buffer)
                except Exception:  # a bug must not take the server down with it
                    log.exception("gRPC connection handling failed")
                    continue
                if len(calls) > 1:
                    self._ready.extend(calls[1:])
                    os.eventfd_write(self._ready_count, len(calls) - 1)
                if calls:
                    self._run(calls[0])

    def _handle(self, fd: int, mask: int, read_buffer: memoryview) -> list[_Call]:
        if fd == self._ready_count:
            try:
                os.eventfd_read(self._ready_count)
            except BlockingIOError:
                return []  # another thread took it
            return [self._ready.popleft()]
        if fd == self._stop_read:
            return []
        if self._listener is not None and fd == self._listener.fileno():
            self._accept_connections()
            return []
        connection = self._connections.get(fd)
        if connection is None:
            return []
        calls = []
        try:
            if mask & _OUT:
                connection.writable()
            if mask & (_IN | select.EPOLLHUP | select.EPOLLERR):
                calls = connection.read(read_buffer)
        finally:
            connection.rearm()
        return calls

    def _accept_connections(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. out of file descriptors: keep serving the others
                log.warning(f"gRPC accept failed: {error}")
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, sock)
            self._connections[connection.fd] = connection
            with connection.lock:
                connection._send()  # the server's SETTINGS
            self._epoll.register(connection.fd, connection.mask | select.EPOLLONESHOT)

    def _run(self, call: _Call) -> None:
        outcome = None
        if not call.cancelled:
            if call.deadline is not None and time.monotonic() > call.deadline:
                outcome = (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", b"")
            else:
                metadata = [("x-request-id", call.request_id)] if call.request_id else None
                with monitoring.request_id(metadata):
                    outcome = call.handler(call.payload)
        call.payload = b""
        try:
            call.connection.finish(call, outcome)
        except Exception:
            log.exception("gRPC reply failed")

    # stopping

    def stop(self, grace: float) -> threading.Event:
        """Refuse new calls (GOAWAY), let running ones finish for up to `grace` seconds, close;
        returns an Event set once stopped (like grpcio's Server.stop)."""
        stopped = threading.Event()

        def shut_down() -> None:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._epoll.unregister(self._listener.fileno())
                self._listener.close()
            for connection in list(self._connections.values()):
                connection.goaway()
            give_up = time.monotonic() + grace
            while time.monotonic() < give_up and not all(
                    c.idle() for c in list(self._connections.values())):
                time.sleep(0.01)
            for connection in list(self._connections.values()):
                connection.abort()
            self._stopping = True
            os.write(self._stop_write, b"x")
            stopped.set()

        threading.Thread(target=shut_down, name="grpc-stop", daemon=True).start()
        return stopped
