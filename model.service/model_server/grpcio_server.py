"""The same gRPC methods on grpcio's server (`--grpc_server_core=grpcio`): a fallback, should a
client ever disagree with the project's own core, and the benchmark's second baseline."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent import futures

import grpc

from model_server import monitoring
from model_server.grpc_protocol import MAX_MESSAGE_BYTES
from model_server.grpc_server import Handler


def _unary(handler: Handler) -> grpc.RpcMethodHandler:
    def behaviour(payload: bytes, context: grpc.ServicerContext) -> bytes:
        with monitoring.request_id(context.invocation_metadata()):
            code, message, reply = handler(payload)
        if code is not grpc.StatusCode.OK:
            context.abort(code, message)
        return reply

    return grpc.unary_unary_rpc_method_handler(behaviour)  # raw bytes in and out


def _unimplemented(payload: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def start(handlers: Mapping[str, Handler], unimplemented: frozenset[str], address: str,
          port: int, threads: int) -> grpc.Server:
    """Bind address:port and serve; RuntimeError if the port cannot be bound."""
    services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for path, handler in handlers.items():
        service, method = path.lstrip("/").rsplit("/", 1)
        services.setdefault(service, {})[method] = _unary(handler)
    for path in unimplemented:
        service, method = path.lstrip("/").rsplit("/", 1)
        services.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
            _unimplemented)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(service, methods)
        for service, methods in services.items()))
    server.add_insecure_port(f"{address}:{port}")  # RuntimeError when it cannot bind
    server.start()
    return server
