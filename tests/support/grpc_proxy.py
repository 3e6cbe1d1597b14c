"""A real gRPC server that forwards every unary call to another server and records it, so tests
can count (and read) exactly what the API sent to the model server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

# As large as TF Serving accepts: the proxy must never be the component that refuses.
_OPTIONS = [("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.max_send_message_length", 2**31 - 1)]


@dataclass(frozen=True)
class RecordedCall:
    method: str  # "/tensorflow.serving.PredictionService/Predict"
    request: bytes  # the serialised request message


class RecordingGrpcProxy(grpc.GenericRpcHandler):
    """Listens on 127.0.0.1:<port>, forwards raw request bytes to `target`, records each call."""

    def __init__(self, target: str) -> None:
        self._lock = threading.Lock()
        self._calls: list[RecordedCall] = []
        self._channel = grpc.insecure_channel(target, options=_OPTIONS)
        self._server = grpc.server(ThreadPoolExecutor(8), handlers=[self], options=_OPTIONS)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls(self, method_suffix: str = "") -> list[RecordedCall]:
        with self._lock:
            return [call for call in self._calls if call.method.endswith(method_suffix)]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        # No (de)serializers: requests and replies pass through as bytes, untouched.
        upstream: Callable[..., bytes] = self._channel.unary_unary(method)

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self._calls.append(RecordedCall(method, request))
            try:
                return upstream(request, timeout=context.time_remaining())
            except grpc.RpcError as error:
                context.abort(error.code(), error.details() or "")
                raise  # abort raises; this line only satisfies type checkers

        return grpc.unary_unary_rpc_method_handler(forward)

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
        self._channel.close()
