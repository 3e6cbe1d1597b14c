"""Prometheus metrics the way TF Serving exports them: `--monitoring_config_file` names a
text-format tensorflow.serving.MonitoringConfig; with `prometheus_config { enable: true }` the REST
port answers GET on its `path` (default /monitoring/prometheus/metrics) with TF Serving's metric
names, labels and units (microseconds), so one scrape config fits this server and the official
image alike.

    prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }

Everything about metrics lives here (config parsing, the registry, the recording functions, the
page and its route); the REST app mounts `routes(...)`, the gRPC methods call `record_call` under
`request_id(...)`, the loader runs in `timed_load`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger("model_server")

DEFAULT_PATH = "/monitoring/prometheus/metrics"  # PrometheusExporter::kPrometheusPath
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# TF Serving's latency buckets: Buckets::Exponential(10, 1.8, 33), microseconds (~20 minutes).
MICROSECOND_BUCKETS = tuple(float(f"{10 * 1.8**i:.6g}") for i in range(33))

# The request id the API sent as gRPC metadata, for the call this thread is running.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_METADATA_KEY = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128


def _monitoring_config_class() -> type:
    """tensorflow.serving.MonitoringConfig (tensorflow_serving/config/monitoring_config.proto):
    tensorflow-serving-api (2.21.0) ships no Python module for it (its tensorflow_serving.config
    has model_server_config_pb2 and others, not monitoring_config_pb2; test_monitoring_config.py
    notices when one does), so the two messages are declared here, field for field, and
    text_format parses them exactly like TF Serving does."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="model_server/monitoring_config.proto", package="tensorflow.serving",
        syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=field.TYPE_BOOL,
                         label=field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=field.TYPE_STRING,
                         label=field.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=field.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig",
                         label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))


MonitoringConfig = _monitoring_config_class()


class ConfigError(ValueError):
    """An unreadable or invalid monitoring config file."""


@dataclass(frozen=True)
class PrometheusSettings:
    path: str  # where the REST port serves the metrics page


def load_config(path: Path) -> PrometheusSettings | None:
    """The Prometheus settings of a MonitoringConfig file; None when not enabled."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read --monitoring_config_file {path}: {error}") from None
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid protobuf file: {path}: {error}") from None
    if not config.prometheus_config.enable:
        return None
    metrics_path = config.prometheus_config.path or DEFAULT_PATH
    if not metrics_path.startswith("/"):
        raise ConfigError(f"prometheus_config.path must start with '/': {metrics_path!r}")
    return PrometheusSettings(metrics_path)


# --- The metrics: TF Serving's names, help texts and labels -----------------------------------
# tensorflow_serving/servables/tensorflow/util.cc and tensorflow/cc/saved_model/loader.cc.
REGISTRY = CollectorRegistry(auto_describe=False)
REQUEST_COUNT = Counter(":tensorflow:serving:request_count", "The total number of requests.",
                        ["model_name", "status"], registry=REGISTRY)
REQUEST_LATENCY = Histogram(
    ":tensorflow:serving:request_latency",
    "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
    ["model_name", "API", "entrypoint"], buckets=MICROSECOND_BUCKETS, registry=REGISTRY)
LOAD_ATTEMPT_COUNT = Counter(":tensorflow:cc:saved_model:load_attempt_count",
                             "The number of times a SavedModel was successfully loaded.",
                             ["model_path", "status"], registry=REGISTRY)
LOAD_LATENCY = Counter(":tensorflow:cc:saved_model:load_latency",
                       "Latency in microseconds for SavedModels that were successfully loaded.",
                       ["model_path"], registry=REGISTRY)

# This server's own (TF Serving logs a refused config but counts nothing): --model_config_file
# reloads refused, the last good config staying in force (reload.py).
CONFIG_RELOAD_FAILURES = Counter(
    "model_server_config_reload_failures",
    "Model config file reloads refused (unreadable, unparsable or invalid); the last good config "
    "stays in force.", registry=REGISTRY)


def record_call(api: str, model_name: str, model_version: int | None, code: grpc.StatusCode,
                seconds: float) -> None:
    """One gRPC call answered. As in TF Serving's PredictionServiceImpl: request_count for every
    Predict by status name, request_latency for the successful ones; a log line for each call,
    with the request id the caller sent."""
    if api == "Predict":
        REQUEST_COUNT.labels(model_name, code.name).inc()
        if code is grpc.StatusCode.OK:
            REQUEST_LATENCY.labels(model_name, api, "GRPC").observe(round(seconds * 1e6))
    log.info(f"{api} {model_name} {code.name} {seconds * 1000:.1f} ms", extra={
        "api": api, "model_name": model_name, "model_version": model_version,
        "status": code.name, "duration_ms": round(seconds * 1000, 3)})


@contextmanager
def timed_load(model_path: Path) -> Iterator[None]:
    """A SavedModel load: load_attempt_count by outcome, load_latency when it succeeded."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        LOAD_ATTEMPT_COUNT.labels(str(model_path), "fail").inc()
        raise
    LOAD_ATTEMPT_COUNT.labels(str(model_path), "success").inc()
    LOAD_LATENCY.labels(str(model_path)).inc(round((time.perf_counter() - started) * 1e6))


@contextmanager
def request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> Iterator[None]:
    """Make the caller's x-request-id (gRPC metadata) the current one while a call runs."""
    value = None
    for key, item in metadata or ():
        if key.lower() == REQUEST_ID_METADATA_KEY:
            text = item.decode("latin-1") if isinstance(item, bytes) else item
            value = text[:MAX_REQUEST_ID_LENGTH] if text.isprintable() else None
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


def page() -> bytes:
    """The metrics page as TF Serving's PrometheusExporter writes it (util/prometheus_exporter.cc):
    `# TYPE` lines, counters under their own name (no `_total` suffix, unlike prometheus-client's
    own exposition), histograms as _bucket/_sum/_count."""
    lines = []
    for family in REGISTRY.collect():
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = family.name if family.type == "counter" else sample.name
            labels = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels.items())
            lines.append(f"{name}{{{labels}}} {floatToGoString(sample.value)}")
    return ("\n".join(lines) + "\n").encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def routes(settings: PrometheusSettings | None) -> list[BaseRoute]:
    """The metrics page's route for the REST app: none unless the monitoring config enables it."""
    if settings is None:
        return []

    async def metrics_page(request: Request) -> Response:
        return Response(page(), media_type=CONTENT_TYPE)

    return [Route(settings.path, metrics_page, methods=["GET"])]
