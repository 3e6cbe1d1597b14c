"""tensorflow.serving.PredictionService and ModelService over gRPC (sync server, small pool)."""

from __future__ import annotations

import functools
import logging
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from model_server import handlers
from model_server.errors import ServingError
from model_server.manager import ModelRegistry

log = logging.getLogger("model_server")

# TF Serving accepts messages up to INT_MAX bytes both ways.
MAX_MESSAGE_BYTES = 2**31 - 1


def _rpc(method):
    """Answer ServingError with its status code; anything unexpected as INTERNAL, logged."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as error:
            context.abort(error.code, error.message)
        except Exception as error:
            log.exception(f"{method.__name__} failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
    return wrapper


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; Classify, Regress and MultiInference answer UNIMPLEMENTED."""

    def __init__(self, registry: ModelRegistry, reply_as_content: bool) -> None:
        self.registry = registry
        self.reply_as_content = reply_as_content

    @_rpc
    def Predict(self, request, context):
        return handlers.predict(self.registry, request, self.reply_as_content)

    @_rpc
    def GetModelMetadata(self, request, context):
        return handlers.get_model_metadata(self.registry, request)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus; HandleReloadConfigRequest answers UNIMPLEMENTED."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    @_rpc
    def GetModelStatus(self, request, context):
        return handlers.get_model_status(self.registry, request)


def start(registry: ModelRegistry, address: str, port: int, threads: int,
          reply_as_content: bool) -> grpc.Server:
    """Bind address:port (TF Serving: 0.0.0.0) and start serving; RuntimeError if taken."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(registry, reply_as_content), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry), server)
    server.add_insecure_port(f"{address}:{port}")
    server.start()
    return server
