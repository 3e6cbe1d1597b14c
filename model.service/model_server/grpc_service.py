"""tensorflow.serving.PredictionService and ModelService on grpcio's server, set up like TF Serving.

The server's options are in grpc_options.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from model_server import handlers, monitoring
from model_server.errors import ServingError
from model_server.grpc_options import (
    DEFAULT_MAX_CONCURRENT_RPCS,
    DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
    server_options,
)
from model_server.manager import ModelRegistry

log = logging.getLogger("model_server")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
# Methods of the two services this server does not implement, as TF Serving's protos list them.
UNIMPLEMENTED = {PREDICTION_SERVICE: ("Classify", "Regress", "MultiInference"),
                 MODEL_SERVICE: ("HandleReloadConfigRequest",)}

@dataclass(frozen=True)
class Method:
    parse: Callable[[bytes], Message]  # DecodeError if the bytes are no request
    handle: Callable[[Message], Message]
    api: str  # "Predict", "GetModelMetadata", "GetModelStatus": metrics and log lines

    def __call__(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        """Parse, run, serialise; every failure becomes the status TF Serving would send. Each
        call is recorded (monitoring.py) under the request id the caller sent as metadata."""
        started = time.perf_counter()
        with monitoring.request_id(context.invocation_metadata()):
            code, message, request, reply = self._run(payload, context)
            answered = getattr(reply, "model_spec", None)
            version = answered.version.value if answered is not None and answered.HasField(
                "version") else None
            model_spec = getattr(request, "model_spec", None)
            monitoring.record_call(self.api, model_spec.name if model_spec is not None else "",
                                   version, code, time.perf_counter() - started)
        if code is not grpc.StatusCode.OK or reply is None:
            context.abort(code, message)
        return reply.SerializeToString()

    def _run(self, payload: bytes, context: grpc.ServicerContext
             ) -> tuple[grpc.StatusCode, str, Message | None, Message | None]:
        """(status, message, request, reply) of one call; never raises."""
        if context.time_remaining() is not None and context.time_remaining() <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", None, None
        try:
            request = self.parse(payload)
        except DecodeError:
            return grpc.StatusCode.INTERNAL, "Failed to parse request", None, None
        try:
            reply = self.handle(request)
        except ServingError as error:
            return error.code, error.message, request, None
        except Exception as error:
            log.exception("gRPC method failed")
            return grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}", request, None
        return grpc.StatusCode.OK, "", request, reply


def methods(registry: ModelRegistry, reply_as_content: bool) -> dict[str, dict[str, Method]]:
    return {
        PREDICTION_SERVICE: {
            "Predict": Method(
                predict_pb2.PredictRequest.FromString,
                lambda request: handlers.predict(registry, request, reply_as_content),
                "Predict"),
            "GetModelMetadata": Method(
                get_model_metadata_pb2.GetModelMetadataRequest.FromString,
                lambda request: handlers.get_model_metadata(registry, request),
                "GetModelMetadata"),
        },
        MODEL_SERVICE: {
            "GetModelStatus": Method(
                get_model_status_pb2.GetModelStatusRequest.FromString,
                lambda request: handlers.get_model_status(registry, request),
                "GetModelStatus"),
        },
    }


def _unimplemented(payload: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def start(registry: ModelRegistry, address: str, port: int, threads: int,
          reply_as_content: bool, *,
          max_receive_message_bytes: int = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
          max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
          channel_arguments: Mapping[str, int | str] | None = None) -> grpc.Server:
    """Bind address:port (TF Serving: 0.0.0.0) and serve; RuntimeError if it cannot bind.
    `stop(grace)` returns an Event set once the server has stopped."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=server_options(max_receive_message_bytes, channel_arguments or {}),
        maximum_concurrent_rpcs=max_concurrent_rpcs)
    generic = []
    for service, implemented in methods(registry, reply_as_content).items():
        handlers_by_name: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            name: grpc.unary_unary_rpc_method_handler(method)  # raw bytes
            for name, method in implemented.items()}
        handlers_by_name.update({name: grpc.unary_unary_rpc_method_handler(_unimplemented)
                                 for name in UNIMPLEMENTED[service]})
        generic.append(grpc.method_handlers_generic_handler(service, handlers_by_name))
    server.add_generic_rpc_handlers(tuple(generic))
    server.add_insecure_port(f"{address}:{port}")  # RuntimeError when it cannot bind
    server.start()
    return server
