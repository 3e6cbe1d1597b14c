"""--monitoring_config_file's MonitoringConfig and the metrics page, without a server."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import grpc
import pytest

from model_server import monitoring
from tests.support.prometheus import parse_samples, value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitoring.config"
    path.write_text(text)
    return path


def test_the_message_is_declared_here_only_while_the_official_package_lacks_it() -> None:
    """monitoring.py declares MonitoringConfig in code because tensorflow-serving-api (2.21.0)
    ships no monitoring_config_pb2; once a release does, this fails: use that module instead."""
    assert importlib.util.find_spec("tensorflow_serving.config.model_server_config_pb2")
    assert importlib.util.find_spec("tensorflow_serving.config.monitoring_config_pb2") is None


def test_enabled_with_a_path(tmp_path: Path) -> None:
    config = write(tmp_path, 'prometheus_config { enable: true, path: "/my/metrics" }\n')
    assert monitoring.load_config(config) == monitoring.PrometheusSettings("/my/metrics")


def test_the_path_defaults_to_tf_servings(tmp_path: Path) -> None:
    config = write(tmp_path, "prometheus_config { enable: true }")
    assert monitoring.load_config(config).path == "/monitoring/prometheus/metrics"


@pytest.mark.parametrize("text", ["", "prometheus_config { enable: false }",
                                  'prometheus_config { path: "/metrics" }'])
def test_not_enabled_means_no_endpoint(tmp_path: Path, text: str) -> None:
    assert monitoring.load_config(write(tmp_path, text)) is None


@pytest.mark.parametrize("text", ["prometheus_config { enable: maybe }",
                                  "prometheus_config { port: 9090 }", "enable: true",
                                  'prometheus_config { enable: true path: "metrics" }'])
def test_invalid_configs_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(monitoring.ConfigError):
        monitoring.load_config(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(monitoring.ConfigError, match="cannot read"):
        monitoring.load_config(tmp_path / "absent.config")


def test_the_page_uses_tf_servings_names_and_units() -> None:
    before = parse_samples(monitoring.page().decode())
    monitoring.record_call("Predict", "unit-model", 3, grpc.StatusCode.OK, 0.0125)
    monitoring.record_call("Predict", "unit-model", None, grpc.StatusCode.INVALID_ARGUMENT, 0.001)
    monitoring.record_call("GetModelStatus", "unit-model", None, grpc.StatusCode.OK, 0.001)
    page = monitoring.page().decode()
    after = parse_samples(page)
    # Counters under their own name, as TF Serving's exporter writes them (no _total).
    assert "# TYPE :tensorflow:serving:request_count counter" in page
    assert ':tensorflow:serving:request_count{model_name="unit-model",status="OK"} 1.0' in page
    count = ":tensorflow:serving:request_count"
    assert value(after, count, model_name="unit-model") - value(before, count,
                                                                model_name="unit-model") == 2
    latency = ":tensorflow:serving:request_latency_sum"
    labels = {"model_name": "unit-model", "API": "Predict", "entrypoint": "GRPC"}
    # Microseconds; only the successful call is timed, as TF Serving does.
    assert value(after, latency, **labels) - value(before, latency, **labels) == 12500
    assert "_total" not in page and "_created" not in page


def test_load_attempts_by_outcome(tmp_path: Path) -> None:
    with monitoring.timed_load(tmp_path / "1"):
        time.sleep(0.01)  # a lower bound only: a loaded machine makes it longer, never shorter
    with pytest.raises(OSError), monitoring.timed_load(tmp_path / "2"):
        raise OSError("no saved_model.pb")
    samples = parse_samples(monitoring.page().decode())
    attempts = ":tensorflow:cc:saved_model:load_attempt_count"
    assert value(samples, attempts, model_path=str(tmp_path / "1"), status="success") == 1
    assert value(samples, attempts, model_path=str(tmp_path / "2"), status="fail") == 1
    assert value(samples, ":tensorflow:cc:saved_model:load_latency",
                 model_path=str(tmp_path / "1")) >= 10_000  # microseconds
    assert value(samples, ":tensorflow:cc:saved_model:load_latency",
                 model_path=str(tmp_path / "2")) == 0
