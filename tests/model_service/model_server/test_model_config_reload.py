"""--model_config_file re-read every --model_config_file_poll_wait_seconds, with version labels,
through the official tensorflow-serving-api client: labels resolve as TF Serving's do (Predict,
GetModelMetadata, GetModelStatus, REST /labels/), a refused config keeps the last good one (logged
and counted), a canary that fails to load leaves stable untouched, promote unloads the old one."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import httpx
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.model_service.clients import (
    AVAILABLE,
    END,
    GREY_IMAGE,
    SEED_VERSION_DIR,
    error_of,
    metadata_request,
    predict_request,
    publish_version,
    status_request,
)
from tests.support.model_server import start_model_server
from tests.support.prometheus import parse_samples, value
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MODEL = "rollout"
METRICS_PATH = "/monitoring/prometheus/metrics"
RELOAD_FAILURES = "model_server_config_reload_failures"


def config_text(base: Path, versions: list[int], labels: dict[str, int]) -> str:
    """A ModelServerConfig as an operator writes it for TF Serving."""
    lines = ["model_config_list {", "  config {", f'    name: "{MODEL}"',
             f'    base_path: "{base}"', '    model_platform: "tensorflow"',
             "    model_version_policy { specific {"]
    lines += [f"      versions: {v}" for v in versions]
    lines += ["    } }"]
    lines += [f'    version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items()]
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    scratch = path.with_suffix(".tmp")
    scratch.write_text(text)
    scratch.replace(path)


@pytest.fixture
def labelled(tmp_path: Path, logs_dir: Path):
    base = tmp_path / MODEL
    for version in (1, 2):
        publish_version(base, version)
    config = tmp_path / "models.config"
    config.write_text(config_text(base, [1], {"stable": 1}))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    server = start_model_server(
        MODEL, base, logs_dir, f"--model_config_file={config}",
        "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models=true", "--max_num_load_retries=0",
        f"--monitoring_config_file={monitoring}")
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield (server, base, config, prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))
    server.stop()


def labelled_predict(stub, label: str) -> int:
    request = predict_request(GREY_IMAGE, model=MODEL)
    request.model_spec.version_label = label
    return stub.Predict(request, timeout=30).model_spec.version.value


def states(stub) -> dict[int, int]:
    reply = stub.GetModelStatus(status_request(MODEL), timeout=10)
    return {s.version: s.state for s in reply.model_version_status}


def reload_failures(server) -> float:
    page = httpx.get(server.rest_url + METRICS_PATH, timeout=10).text
    return value(parse_samples(page), RELOAD_FAILURES)


def resolves(stub, label: str, version: int) -> bool:
    try:
        return labelled_predict(stub, label) == version
    except grpc.RpcError:
        return False


def test_labels_resolve_as_tf_servings(labelled):
    server, _base, _config, predict_stub, model_stub = labelled
    assert labelled_predict(predict_stub, "stable") == 1

    metadata = metadata_request(MODEL)
    metadata.model_spec.version_label = "stable"
    assert predict_stub.GetModelMetadata(metadata, timeout=10).model_spec.version.value == 1

    status = status_request(MODEL)
    status.model_spec.version_label = "stable"
    reply = model_stub.GetModelStatus(status, timeout=10)
    assert [(s.version, s.state) for s in reply.model_version_status] == [(1, AVAILABLE)]

    unknown = predict_request(GREY_IMAGE, model=MODEL)
    unknown.model_spec.version_label = "nope"
    error = error_of(predict_stub.Predict, unknown)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Unrecognized servable version label: nope"

    rest = httpx.get(f"{server.rest_url}/v1/models/{MODEL}/labels/stable", timeout=10)
    assert rest.status_code == 200
    assert rest.json()["model_version_status"][0]["version"] == "1"
    rest = httpx.post(f"{server.rest_url}/v1/models/{MODEL}/labels/stable:predict",
                      json={"instances": GREY_IMAGE.tolist()}, timeout=30)
    assert rest.status_code == 200 and len(rest.json()["predictions"][0]) == 5
    rest = httpx.get(f"{server.rest_url}/v1/models/{MODEL}/labels/nope/metadata", timeout=10)
    assert rest.status_code == 400
    assert rest.json() == {"error": "Unrecognized servable version label: nope"}


def test_shadow_canary_refused_configs_and_promote(labelled, tmp_path):
    server, base, config, predict_stub, model_stub = labelled
    assert reload_failures(server) == 0

    # A new label may name a version still loading (--allow_version_labels_for_unavailable_models).
    write_atomically(config, config_text(base, [1, 2], {"stable": 1, "canary": 2}))
    wait_until(lambda: resolves(predict_stub, "canary", 2), 60, "canary -> 2")
    assert labelled_predict(predict_stub, "stable") == 1

    # Refused, each kept out with the last good config in force: not protobuf text; a version
    # not on disk; moving an existing label to a version that is not loaded (TF Serving's rule,
    # even with the flag). Nothing unloads, nothing new loads.
    publish_version(base, 3)
    refused = [
        "model_config_list { config { name: ",
        config_text(base, [1, 7], {"stable": 1}),
        config_text(base, [1, 2, 3], {"stable": 3, "canary": 2}),
    ]
    for number, text in enumerate(refused, start=1):
        write_atomically(config, text)
        wait_until(lambda n=number: reload_failures(server) == n, 30, f"refusal {number}")
        assert states(model_stub) == {1: AVAILABLE, 2: AVAILABLE}
        assert labelled_predict(predict_stub, "stable") == 1
        assert labelled_predict(predict_stub, "canary") == 2
    log = server.process.log()
    assert "Failed to reload the model config" in log
    assert "version(s) 7, not found under" in log
    assert ("Request to assign label to version 3 of model rollout, which is not currently "
            "available for inference") in log

    # A canary version that fails to load: stable keeps serving version 1, untouched.
    broken = tmp_path / "broken"
    shutil.copytree(SEED_VERSION_DIR, broken)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    publish_version(base, 4, source=broken)
    write_atomically(config, config_text(base, [1, 2, 4], {"stable": 1, "canary": 2}))
    wait_until(lambda: states(model_stub).get(4) == END, 60, "version 4 failed")
    assert states(model_stub) == {4: END, 2: AVAILABLE, 1: AVAILABLE}
    assert labelled_predict(predict_stub, "stable") == 1

    # Promote: stable -> 2, version 1 and the canary label go.
    write_atomically(config, config_text(base, [2], {"stable": 2}))
    wait_until(lambda: states(model_stub).get(1) == END, 60, "version 1 unloaded")
    assert labelled_predict(predict_stub, "stable") == 2
    canary = predict_request(GREY_IMAGE, model=MODEL)
    canary.model_spec.version_label = "canary"
    assert error_of(predict_stub.Predict, canary).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reload_failures(server) == 3


def test_labels_on_unloaded_versions_refuse_to_start_without_the_flag(tmp_path, logs_dir):
    """As TF Serving: at start-up no version is loaded yet, so a label fails without the flag."""
    base = tmp_path / MODEL
    publish_version(base, 1)
    config = tmp_path / "models.config"
    config.write_text(config_text(base, [1], {"stable": 1}))
    server = start_model_server(MODEL, base, logs_dir, f"--model_config_file={config}",
                                wait=False)
    try:
        assert server.process.proc.wait(60) == 1
        assert ("Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to "
                "version 1 of model rollout, which is not currently available for inference"
                ) in server.process.log()
    finally:
        server.stop()
