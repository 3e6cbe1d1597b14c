"""The one module that talks gRPC: a long-lived grpc.aio channel to TF Serving.

Every call has a deadline; UNAVAILABLE is retried by the channel itself (service-config retry
policy); gRPC failures leave this module as ModelServerError subclasses only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import Message

from app.core import metrics, request_id
from app.tfserving.protos import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from app.tfserving.signature import Signature, SignatureError, signature_from_metadata
from app.tfserving.tensors import TensorDecodeError, from_tensor_proto, to_tensor_proto

log = logging.getLogger(__name__)

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE

# TF Serving (like any gRPC server with default settings) answers client pings more frequent
# than every 5 minutes with GOAWAY "too_many_pings". Pings every 5 minutes, and only during calls,
# are accepted. Setting a keepalive also makes gRPC set TCP_USER_TIMEOUT to the keepalive timeout:
# a connection whose sent bytes stay unacknowledged that long is torn down. A replica whose node
# vanished (no FIN, no RST) therefore stops getting round_robin picks 4 s after the first call
# sent to it instead of 20 s (gRPC's default timeout), during which calls whose retries kept
# landing on it ran into the 5 s deadline (docs/scale-out.md, node cut). 4 s is far above
# an ACK's round trip on a cluster network, even to a model server busy on every core: the
# kernel, not the server's threads, acknowledges.
KEEPALIVE_TIME_MS = 300_000
KEEPALIVE_TIMEOUT_MS = 4_000
# A 512x512x3 float32 input is 3 MiB; replies of a classifier are tiny.
MAX_SEND_MESSAGE_BYTES = 32 * 1024 * 1024
MAX_RECEIVE_MESSAGE_BYTES = 8 * 1024 * 1024
# Reconnect soon after the model server comes back (gRPC's default backoff grows to 120 s).
MAX_RECONNECT_BACKOFF_MS = 2_000

# gRPC codes that mean "the model cannot answer right now, try again later".
_UNAVAILABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED,
})


class ModelServerError(Exception):
    """The model server did not give a usable answer."""


class ModelUnavailable(ModelServerError):
    """Down, not loaded yet, overloaded: worth retrying later."""


class ModelTimeout(ModelServerError):
    """The call's deadline passed."""


class ModelFailed(ModelServerError):
    """Any other failure: an error status, or a reply that does not fit the signature."""


@dataclass(frozen=True)
class ModelOutput:
    """One Predict reply: the output rows and which model version produced them."""

    rows: np.ndarray  # 2-D: one row per input image, in input order
    model_name: str
    version: int

    @property
    def values(self) -> np.ndarray:
        """The first row: for a single image, its answer."""
        return np.asarray(self.rows[0])


def service_config(retry_attempts: int, lb_policy: str = "round_robin",
                   attempt_timeout: float = 0.0) -> dict[str, Any]:
    """Channel service config: spread calls over every address the target resolves to
    (`lb_policy`), retry UNAVAILABLE with exponential backoff, never wait_for_ready."""
    method: dict[str, Any] = {"name": [{"service": "tensorflow.serving.PredictionService"},
                             {"service": "tensorflow.serving.ModelService"}],
                    "waitForReady": False}
    if retry_attempts > 1:  # gRPC rejects a retry policy with fewer than 2 attempts
        method["retryPolicy"] = {"maxAttempts": retry_attempts, "initialBackoff": "0.1s",
                                 "maxBackoff": "1s", "backoffMultiplier": 2,
                                 "retryableStatusCodes": ["UNAVAILABLE"]}
        if attempt_timeout:
            # An attempt with no reply in time (a replica on a node that vanished: no FIN, no
            # RST) is abandoned and retried on the next replica, within the call's deadline.
            method["retryPolicy"]["perAttemptRecvTimeout"] = f"{attempt_timeout:.3f}s"
    # round_robin keeps a connection to every resolved replica (e.g. dns:///tasks.model.service:
    # 8500) and sends each call, and each retry, to the next ready one; pick_first uses one.
    return {"loadBalancingConfig": [{lb_policy: {}}], "methodConfig": [method]}


def channel_options(retry_attempts: int, lb_policy: str = "round_robin",
                    attempt_timeout: float = 0.0) -> list[tuple[str, object]]:
    """The channel arguments; docs/api-service.md explains each choice."""
    return [
        ("grpc.enable_retries", 1),
        # gRPC reads perAttemptRecvTimeout only with this (still "experimental") switch on.
        ("grpc.experimental.enable_hedging", 1 if attempt_timeout else 0),
        # gRPC keeps a call's request for retries only up to this size (default 256 KiB, less
        # than one 150x150 image): a larger call is committed once sent and never retried.
        ("grpc.per_rpc_retry_buffer_size", MAX_SEND_MESSAGE_BYTES),
        ("grpc.service_config",
         json.dumps(service_config(retry_attempts, lb_policy, attempt_timeout))),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 250),
        ("grpc.min_reconnect_backoff_ms", 250),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        ("grpc.dns_min_time_between_resolutions_ms", 5_000),
        ("grpc.primary_user_agent", "cassava-api"),
    ]


def error_for(code: grpc.StatusCode, details: str | None) -> ModelServerError:
    """Classify a gRPC status into the three failures the API distinguishes."""
    message = f"{code.name}: {details or ''}".strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ModelTimeout(message)
    if code in _UNAVAILABLE_CODES:
        return ModelUnavailable(message)
    return ModelFailed(message)


class TFServingClient:
    """Predict, GetModelMetadata and GetModelStatus of one model over one channel."""

    def __init__(self, address: str, model_name: str, *, version: int | None = None,
                 signature_name: str = "serving_default", deadline: float = 5.0,
                 retry_attempts: int = 3, lb_policy: str = "round_robin",
                 reopen_seconds: float = 0.0, attempt_timeout: float = 0.0) -> None:
        self.address = address
        self.model_name = model_name
        self.pinned_version = version
        self.signature_name = signature_name
        self.deadline = deadline
        self._options = channel_options(retry_attempts, lb_policy, attempt_timeout)
        # gRPC resolves the target again only when a connection closes: replicas added since
        # get no calls until then. A channel reopened every `reopen_seconds` (0 = never)
        # resolves afresh; the old one finishes its calls in flight, then closes.
        self._reopen_seconds = reopen_seconds
        self._closing: set[asyncio.Task[None]] = set()
        self._open_channel()
        self._signatures: dict[int, Signature] = {}  # by model version
        # The version the server answered with last, per version label (None: no label).
        self._current: dict[str | None, int] = {}
        self._metadata_lock = asyncio.Lock()

    def _open_channel(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.address, options=self._options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._opened_at = time.monotonic()

    def _reopen_if_due(self) -> None:
        if self._reopen_seconds and time.monotonic() - self._opened_at >= self._reopen_seconds:
            old = self._channel
            self._open_channel()
            task = asyncio.get_running_loop().create_task(old.close(grace=self.deadline))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._closing)
        await self._channel.close()

    def _model_spec(self, *, with_signature: bool = False, label: str | None = None
                    ) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model_name)
        if label:  # TF Serving's version_label: the model server resolves it (rollout)
            spec.version_label = label
        elif self.pinned_version is not None:
            spec.version.value = self.pinned_version
        if with_signature:
            spec.signature_name = self.signature_name
        return spec

    async def _call(self, name: str, method: grpc.aio.UnaryUnaryMultiCallable[Any, Any],
                    request: Message) -> Any:
        """method(request) within the deadline, counted in the metrics under `name`."""
        self._reopen_if_due()  # the next call goes to the new channel; this one, to the old
        # The request id travels as gRPC metadata; the model server logs it.
        current = request_id.CURRENT.get()
        metadata = ((request_id.GRPC_METADATA_KEY, current),) if current else None
        started, code = time.perf_counter(), grpc.StatusCode.OK
        try:
            return await method(request, timeout=self.deadline, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            code = error.code()
            raise error_for(code, error.details()) from None
        finally:
            metrics.record_model_call(name, code.name,
                                      time.perf_counter() - started)

    async def available_versions(self) -> list[int]:
        """Versions of the model that GetModelStatus reports AVAILABLE."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=self._model_spec())
        reply = await self._call("GetModelStatus", self._models.GetModelStatus, request)
        return sorted(status.version for status in reply.model_version_status
                      if status.state == AVAILABLE)

    async def signature(self, label: str | None = None) -> Signature:
        """The serving signature of the version answering now, for a version label or for
        unlabelled requests (cached per version)."""
        current = self._current.get(label)
        cached = self._signatures.get(current) if current else None
        if cached is not None:
            return cached
        async with self._metadata_lock:
            current = self._current.get(label)
            if current in self._signatures:
                return self._signatures[current]
            request = get_model_metadata_pb2.GetModelMetadataRequest(
                model_spec=self._model_spec(label=label), metadata_field=["signature_def"])
            reply = await self._call("GetModelMetadata", self._predictions.GetModelMetadata,
                                    request)
            try:
                signature = signature_from_metadata(reply, self.signature_name)
            except SignatureError as error:
                raise ModelFailed(f"model {self.model_name!r}: {error}") from None
            log.info("model %s version %d: input %r %dx%d, output %r (%s classes)",
                     signature.model_name, signature.version, signature.input_name,
                     signature.height, signature.width, signature.output_name,
                     signature.num_classes)
            self._signatures[signature.version] = signature
            self._current[label] = signature.version
            return signature

    async def predict(self, signature: Signature, image: np.ndarray, label: str | None = None
                      ) -> ModelOutput:
        """Run (N, H, W, 3) float32 images through `signature` in one call; one row per image.
        With a version label, the model server picks the version the label names now."""
        request = predict_pb2.PredictRequest(
            model_spec=self._model_spec(with_signature=True, label=label),
            output_filter=[signature.output_name])
        request.inputs[signature.input_name].CopyFrom(to_tensor_proto(image))
        try:
            reply = await self._call("Predict", self._predictions.Predict, request)
        except ModelFailed:
            # e.g. INVALID_ARGUMENT: the signature may have changed
            self._current.pop(label, None)
            raise
        version = reply.model_spec.version.value if reply.model_spec.HasField("version") \
            else signature.version
        if version != self._current.get(label):
            log.info("model %s%s now answers with version %d", self.model_name,
                     f" ({label})" if label else "", version)
            self._current[label] = version  # the next signature() fetches its metadata
        if signature.output_name not in reply.outputs:
            raise ModelFailed(f"the reply has no output {signature.output_name!r}")
        try:
            values = from_tensor_proto(reply.outputs[signature.output_name])
        except TensorDecodeError as error:
            raise ModelFailed(f"unreadable output tensor: {error}") from None
        if values.ndim != 2 or values.shape[0] != image.shape[0]:
            raise ModelFailed(f"output shape {values.shape}, expected ({image.shape[0]}, classes)")
        return ModelOutput(rows=values.astype(np.float64),
                           model_name=reply.model_spec.name or self.model_name, version=version)
