"""tensorflow.serving.PredictionService and ModelService: TF Serving's gRPC methods on protos.

The transport is grpc_server.py (this project's own server core, chosen for latency; see there);
clients are ordinary gRPC clients: the tests use grpcio with the official tensorflow-serving-api
stubs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from model_server import handlers, monitoring, predict_wire
from model_server.errors import ServingError
from model_server.grpc_server import GrpcServer
from model_server.manager import ModelRegistry

log = logging.getLogger("model_server")

PREDICTION_SERVICE = "/tensorflow.serving.PredictionService/"
MODEL_SERVICE = "/tensorflow.serving.ModelService/"
# Methods of the two services this server does not implement, as TF Serving's protos list them.
UNIMPLEMENTED = frozenset({
    PREDICTION_SERVICE + "Classify", PREDICTION_SERVICE + "Regress",
    PREDICTION_SERVICE + "MultiInference", MODEL_SERVICE + "HandleReloadConfigRequest",
})


@dataclass(frozen=True)
class Method:
    parse: Callable[[memoryview | bytes], object]  # DecodeError if the bytes are no request
    handle: Callable[[object], Message]
    api: str  # "Predict", "GetModelMetadata", "GetModelStatus": metrics and log lines

    def __call__(self, payload: memoryview | bytes) -> tuple[grpc.StatusCode, str, bytes]:
        """Parse, run, serialise, record (monitoring.py). Never raises: every failure is a
        status."""
        started = time.perf_counter()
        model_spec = None
        try:
            request = self.parse(payload)
        except DecodeError:
            return self._done(started, None, None, grpc.StatusCode.INTERNAL,
                              "Failed to parse request", b"")
        model_spec = (request[0] if isinstance(request, tuple) else request).model_spec
        try:
            reply = self.handle(request)
        except ServingError as error:
            return self._done(started, model_spec, None, error.code, error.message, b"")
        except Exception as error:
            log.exception("gRPC method failed")
            return self._done(started, model_spec, None, grpc.StatusCode.INTERNAL,
                              f"{type(error).__name__}: {error}", b"")
        return self._done(started, model_spec, reply, grpc.StatusCode.OK, "",
                          reply.SerializeToString())

    def _done(self, started: float, model_spec, reply: Message | None, code: grpc.StatusCode,
              message: str, payload: bytes) -> tuple[grpc.StatusCode, str, bytes]:
        answered = getattr(reply, "model_spec", None)
        version = answered.version.value if answered is not None and answered.HasField(
            "version") else None
        monitoring.record_call(self.api, model_spec.name if model_spec is not None else "",
                               version, code, time.perf_counter() - started)
        return code, message, payload


def parse_predict(payload: memoryview | bytes,
                  ) -> tuple[predict_pb2.PredictRequest, dict[str, memoryview]]:
    """The request, with the inputs' tensor_content left in the payload where that is possible."""
    split = predict_wire.split_tensor_content(payload)
    if split is None:
        return predict_pb2.PredictRequest.FromString(payload), {}
    stripped, contents = split
    return predict_pb2.PredictRequest.FromString(stripped), contents


def methods(registry: ModelRegistry, reply_as_content: bool) -> dict[str, Method]:
    return {
        PREDICTION_SERVICE + "Predict": Method(
            parse_predict,
            lambda parsed: handlers.predict(registry, parsed[0], reply_as_content, parsed[1]),
            "Predict"),
        PREDICTION_SERVICE + "GetModelMetadata": Method(
            get_model_metadata_pb2.GetModelMetadataRequest.FromString,
            lambda request: handlers.get_model_metadata(registry, request), "GetModelMetadata"),
        MODEL_SERVICE + "GetModelStatus": Method(
            get_model_status_pb2.GetModelStatusRequest.FromString,
            lambda request: handlers.get_model_status(registry, request), "GetModelStatus"),
    }


def start(registry: ModelRegistry, address: str, port: int, threads: int,
          reply_as_content: bool, core: str = "own") -> GrpcServer | grpc.Server:
    """Bind address:port (TF Serving: 0.0.0.0) and start serving; RuntimeError if taken. Both
    cores answer `stop(grace)` with an Event."""
    handlers = methods(registry, reply_as_content)
    if core == "grpcio":
        from model_server import grpcio_server

        return grpcio_server.start(handlers, UNIMPLEMENTED, address, port, threads)
    server = GrpcServer(handlers, UNIMPLEMENTED, threads)
    server.start(address, port)
    return server
