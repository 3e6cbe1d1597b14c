"""Prometheus metrics of the API (prometheus-client): the metric objects, the ASGI middleware that
measures every request, and the recording functions the prediction path calls.

Several uvicorn workers: set PROMETHEUS_MULTIPROC_DIR to an empty directory before the workers
start; every worker then writes its values there and GET /metrics adds them up
(prometheus-client's multiprocess mode). Without it, the one process keeps its values in memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.problems import PROBLEM_MEDIA_TYPE

disable_created_metrics()  # no *_created series: nothing here reads them

ACCESS_LOG = logging.getLogger("app.access")

PATH = "/metrics"
# 1 ms .. 10 s, about three buckets per decade: enough to read p50/p95/p99 of each hop.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0,
                   1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
# 1 KiB .. 16 MiB (the default upload cap is 10 MiB).
KIB, MIB = 1024, 1024 * 1024
SIZE_BUCKETS = (KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 2 * MIB, 4 * MIB, 8 * MIB,
                10 * MIB, 16 * MIB)
_PROBLEM = PROBLEM_MEDIA_TYPE.encode()
UNMATCHED = "<unmatched>"  # never the raw path: a scanner must not create a series per URL
PREDICT_ROUTES = frozenset({"/predict/image", "/v1/predict/image", "/v1/predict/images"})
# The methods the API serves (Starlette answers HEAD for GET routes). Any other token is a valid
# HTTP method the server passes on: as a label value each would be a series of its own (one
# client grew /metrics from 26 KB to 157 KB in three seconds, issue 20), so they count as one.
SERVED_METHODS = frozenset({"GET", "HEAD", "POST"})
OTHER_METHOD = "other"

REQUESTS = Counter("cassava_api_requests", "HTTP requests answered, by route template, method "
                   "and status", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("cassava_api_request_duration_seconds", "Whole request, first byte "
                            "in to last byte out", ["route", "method"], buckets=LATENCY_BUCKETS)
PHASE_SECONDS = Histogram("cassava_api_prediction_phase_duration_seconds", "One phase of a "
                          "prediction: decode (image to tensor), model (the Predict call), reply "
                          "(ranking and the response body)", ["phase"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge("cassava_api_requests_in_flight", "HTTP requests being answered now",
                  multiprocess_mode="livesum")
UPLOAD_BYTES = Histogram("cassava_api_upload_size_bytes", "Request body size of prediction "
                         "requests, accepted or not", buckets=SIZE_BUCKETS)
REJECTED = Counter("cassava_api_rejected_uploads", "Prediction requests answered with a problem "
                   "document, by its code", ["code"])
PREDICTIONS = Counter("cassava_api_predictions", "Predictions answered, by top class and model "
                      "version", ["model_name", "model_version", "code"])
LOW_CONFIDENCE = Counter("cassava_api_low_confidence_predictions", "Predictions whose top "
                         "probability is under LOW_CONFIDENCE_THRESHOLD",
                         ["model_name", "model_version"])
CONFIDENCE = Summary("cassava_api_prediction_confidence", "Top-class probability of the "
                     "predictions answered, by model version (_sum / _count = the mean)",
                     ["model_name", "model_version"])
# Per version label (stable, canary; "none" without labels) and the version that answered: the
# values come from the model server's replies and the rollout plan, never from a client.
VERSION_CALLS = Counter("cassava_api_version_predictions", "Predict calls for single "
                        "predictions, by version label, answering version and outcome (ok, "
                        "error; an error's version is the label's last known one)",
                        ["label", "model_version", "outcome"])
VERSION_SECONDS = Histogram("cassava_api_version_predict_duration_seconds", "Predict call "
                            "latency of single predictions, by version label and version",
                            ["label", "model_version"], buckets=LATENCY_BUCKETS)
SHADOW_COMPARISONS = Counter("cassava_api_shadow_comparisons", "Shadow predictions: the same "
                             "photo through canary, compared with stable's answer (agreed: the "
                             "same top class)", ["stable_version", "canary_version", "agreed"])
SHADOW_DIFFERENCE = Histogram("cassava_api_shadow_max_abs_difference", "Largest |p_stable - "
                              "p_canary| over the classes, per shadow comparison",
                              ["stable_version", "canary_version"],
                              buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0))
SHADOW_SKIPPED = Counter("cassava_api_shadow_skipped", "Shadow predictions not compared: "
                         "dropped (too many running) or error (canary failed)", ["reason"])
ROLLOUT_FILE_ERRORS = Counter("cassava_api_rollout_file_errors", "Rollout files refused "
                              "(unreadable or invalid); the last good plan stays")
MODEL_CALLS = Counter("cassava_api_model_server_calls", "gRPC calls to the model server, by "
                      "method and gRPC status code", ["method", "code"])
MODEL_CALL_SECONDS = Histogram("cassava_api_model_server_call_duration_seconds", "gRPC calls to "
                               "the model server, retries included", ["method"],
                               buckets=LATENCY_BUCKETS)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric (all workers' in multiprocess mode) and its media type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# Children of the labelled metrics whose label values are known in advance, looked up once.
_PHASES = {name: PHASE_SECONDS.labels(name) for name in ("decode", "model", "reply")}


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time one phase of a prediction (decode, model, reply)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _PHASES[name].observe(time.perf_counter() - started)


def record_prediction(model_name: str, version: int, code: str, low_confidence: bool,
                      confidence: float) -> None:
    PREDICTIONS.labels(model_name, str(version), code).inc()
    CONFIDENCE.labels(model_name, str(version)).observe(confidence)
    if low_confidence:
        LOW_CONFIDENCE.labels(model_name, str(version)).inc()


_last_version: dict[str, str] = {}  # label -> the version that answered it last


def record_version_call(label: str | None, version: int | None, *, ok: bool,
                        seconds: float | None) -> None:
    """One single-prediction Predict call, by version label and answering version."""
    name = label or "none"
    if version is not None:
        _last_version[name] = str(version)
    shown = str(version) if version is not None else _last_version.get(name, "unknown")
    VERSION_CALLS.labels(name, shown, "ok" if ok else "error").inc()
    if seconds is not None:
        VERSION_SECONDS.labels(name, shown).observe(seconds)


def record_shadow(stable_version: int, canary_version: int, agreed: bool,
                  max_abs_difference: float) -> None:
    SHADOW_COMPARISONS.labels(str(stable_version), str(canary_version),
                              "true" if agreed else "false").inc()
    SHADOW_DIFFERENCE.labels(str(stable_version), str(canary_version)).observe(
        max_abs_difference)


def record_shadow_dropped() -> None:
    SHADOW_SKIPPED.labels("dropped").inc()


def record_shadow_error() -> None:
    SHADOW_SKIPPED.labels("error").inc()


def record_rollout_file_error() -> None:
    ROLLOUT_FILE_ERRORS.inc()


def record_model_call(method: str, code: str, seconds: float) -> None:
    MODEL_CALLS.labels(method, code).inc()
    MODEL_CALL_SECONDS.labels(method).observe(seconds)


def route_template(scope: Scope) -> str:
    """The matched route's path template (FastAPI puts the route in the scope), never the URL."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class ObservedRequestsMiddleware:
    """Writes the access log line of every HTTP request (method, path without query, status,
    duration: never the client address, headers or body) and, with `record_metrics`, counts,
    times and sizes it and reads the problem `code` of error answers (problem documents are
    small JSON; success bodies are never read)."""

    def __init__(self, app: ASGIApp, record_metrics: bool = True) -> None:
        self.app = app
        self.record_metrics = record_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = 0
        status = 500  # an exception before the response started is answered 500 upstream
        problem: bytearray | None = None

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal status, problem
            if message["type"] == "http.response.start":
                status = message["status"]
                if status >= 400 and any(name == b"content-type" and value.startswith(_PROBLEM)
                                         for name, value in message.get("headers", ())):
                    problem = bytearray()
            elif message["type"] == "http.response.body" and problem is not None:
                problem += message.get("body", b"")
            await send(message)

        if self.record_metrics:
            IN_FLIGHT.inc()
        try:
            await self.app(scope, counting_receive if self.record_metrics else receive,
                           watching_send)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"]
            ACCESS_LOG.info("%s %s %d %.1f ms", method, scope["path"], status, seconds * 1000,
                            extra={"method": method, "path": scope["path"], "status": status,
                                   "duration_ms": round(seconds * 1000, 3)})
            if self.record_metrics:
                self._record(scope, method, status, seconds, received, problem)

    @staticmethod
    def _record(scope: Scope, method: str, status: int, seconds: float, received: int,
                problem: bytearray | None) -> None:
        IN_FLIGHT.dec()
        route = route_template(scope)
        method = method if method in SERVED_METHODS else OTHER_METHOD
        REQUESTS.labels(route, method, str(status)).inc()
        REQUEST_SECONDS.labels(route, method).observe(seconds)
        if route in PREDICT_ROUTES or (problem is not None and status == 413):
            UPLOAD_BYTES.observe(received)
            if problem is not None:
                REJECTED.labels(_problem_code(problem)).inc()


def _problem_code(body: bytes | bytearray) -> str:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return "unknown"
    return code if isinstance(code, str) else "unknown"
