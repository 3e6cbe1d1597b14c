"""tensorflow.serving.PredictionService and ModelService on grpcio's server, set up like TF Serving.

The server's options are in grpc_options.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from model_server import handlers
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

    def __call__(self, payload: bytes, context: grpc.ServicerContext) -> bytes:
        """Parse, run, serialise; every failure becomes the status TF Serving would send."""
        if context.time_remaining() is not None and context.time_remaining() <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        try:
            request = self.parse(payload)
        except DecodeError:
            context.abort(grpc.StatusCode.INTERNAL, "Failed to parse request")
        try:
            reply = self.handle(request)
        except ServingError as error:
            context.abort(error.code, error.message)
        except Exception as error:
            log.exception("gRPC method failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
        return reply.SerializeToString()


def methods(registry: ModelRegistry, reply_as_content: bool) -> dict[str, dict[str, Method]]:
    return {
        PREDICTION_SERVICE: {
            "Predict": Method(
                predict_pb2.PredictRequest.FromString,
                lambda request: handlers.predict(registry, request, reply_as_content)),
            "GetModelMetadata": Method(
                get_model_metadata_pb2.GetModelMetadataRequest.FromString,
                lambda request: handlers.get_model_metadata(registry, request)),
        },
        MODEL_SERVICE: {
            "GetModelStatus": Method(
                get_model_status_pb2.GetModelStatusRequest.FromString,
                lambda request: handlers.get_model_status(registry, request)),
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
        handlers_by_name = {name: grpc.unary_unary_rpc_method_handler(method)  # raw bytes
                            for name, method in implemented.items()}
        handlers_by_name.update({name: grpc.unary_unary_rpc_method_handler(_unimplemented)
                                 for name in UNIMPLEMENTED[service]})
        generic.append(grpc.method_handlers_generic_handler(service, handlers_by_name))
    server.add_generic_rpc_handlers(tuple(generic))
    server.add_insecure_port(f"{address}:{port}")  # RuntimeError when it cannot bind
    server.start()
    return server
