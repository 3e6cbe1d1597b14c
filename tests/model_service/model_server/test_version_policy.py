"""Versions come and go while the server runs: rollouts without failed calls, broken versions,
half-written versions, and model_config_file version policies."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.model_service.clients import (
    AVAILABLE,
    END,
    GREY_IMAGE,
    SEED_VERSION_DIR,
    error_of,
    predict_request,
    publish_version,
    status_request,
)
from tests.support.model_server import start_model_server
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
# --enable_batching: a TF Serving flag this server accepts and ignores (with a warning).
FAST_POLL = ("--file_system_poll_wait_seconds=1", "--max_num_load_retries=0", "--enable_batching")


def wait_for(condition, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll the server; gRPC errors (e.g. NOT_FOUND before the first version is seen) mean "not
    yet"."""
    wait_until(condition, timeout, what, every=0.1, ignore=(grpc.RpcError,))


def states(stub, model: str) -> dict[int, tuple[int, int, str]]:
    reply = stub.GetModelStatus(status_request(model), timeout=10)
    return {s.version: (s.state, s.status.error_code, s.status.error_message)
            for s in reply.model_version_status}


@pytest.fixture
def served_scratch(scratch_repository: Path, logs_dir: Path):
    """A server on a scratch repository that already holds version 1, with 1 s polling."""
    publish_version(scratch_repository, 1)
    server = start_model_server("scratch", scratch_repository, logs_dir, *FAST_POLL)
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield (server, prediction_service_pb2_grpc.PredictionServiceStub(channel),
               model_service_pb2_grpc.ModelServiceStub(channel))
    server.stop()


def test_new_version_rolls_out_without_a_failed_call(served_scratch, scratch_repository):
    server, predict_stub, model_stub = served_scratch
    versions_seen: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client_loop() -> None:
        request = predict_request(GREY_IMAGE, model="scratch")
        while not stop.is_set():
            try:
                versions_seen.append(
                    predict_stub.Predict(request, timeout=30).model_spec.version.value)
            except grpc.RpcError as error:
                failures.append(error)

    client = threading.Thread(target=client_loop)
    client.start()
    try:
        wait_for(lambda: len(versions_seen) >= 5, what="predictions from version 1")
        publish_version(scratch_repository, 2)
        wait_for(lambda: states(model_stub, "scratch").get(1, (0,))[0] == END,
                 what="version 1 unloaded")
        calls_before = len(versions_seen)
        wait_for(lambda: len(versions_seen) >= calls_before + 5, what="calls after the rollout")
    finally:
        stop.set()
        client.join(30)
    assert failures == []
    assert versions_seen[0] == 1
    assert versions_seen[-1] == 2
    switch = versions_seen.index(2)
    assert set(versions_seen[switch:]) == {2}  # never back to the old version
    assert states(model_stub, "scratch") == {2: (AVAILABLE, 0, ""), 1: (END, 0, "")}
    error = error_of(predict_stub.Predict, predict_request(GREY_IMAGE, model="scratch", version=1))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert server.process.alive()


def test_broken_version_keeps_the_old_one_serving(served_scratch, scratch_repository, tmp_path):
    server, predict_stub, model_stub = served_scratch
    broken = tmp_path / "broken"
    shutil.copytree(SEED_VERSION_DIR, broken)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    publish_version(scratch_repository, 2, source=broken)
    wait_for(lambda: states(model_stub, "scratch").get(2, (0,))[0] == END,
             what="version 2 failed")
    version_2 = states(model_stub, "scratch")[2]
    assert version_2[1] == grpc.StatusCode.DATA_LOSS.value[0]
    assert "saved_model.pb as binary proto" in version_2[2]
    assert states(model_stub, "scratch")[1] == (AVAILABLE, 0, "")
    reply = predict_stub.Predict(predict_request(GREY_IMAGE, model="scratch"), timeout=30)
    assert reply.model_spec.version.value == 1
    log = server.process.log()
    assert "Loading servable: {name: scratch version: 2} failed" in log
    assert "Flag --enable_batching is accepted for compatibility" in log


def test_unavailable_until_a_complete_version_appears(scratch_repository, logs_dir):
    server = start_model_server("scratch", scratch_repository, logs_dir, *FAST_POLL, wait=False)
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = predict_request(GREY_IMAGE, model="scratch")
            server.process.wait_until(
                lambda: "No versions of servable scratch found" in server.process.log(), 60,
                "the empty repository noticed")
            assert error_of(predict_stub.Predict, request).code() == grpc.StatusCode.UNAVAILABLE
            error = error_of(model_stub.GetModelStatus, status_request("scratch"))
            assert error.code() == grpc.StatusCode.NOT_FOUND

            # A version directory still being written (no saved_model.pb yet) is left alone.
            partial = scratch_repository / "1"
            shutil.copytree(SEED_VERSION_DIR / "variables", partial / "variables")
            time.sleep(2.5)  # more than two polls
            assert error_of(predict_stub.Predict, request).code() == grpc.StatusCode.UNAVAILABLE
            assert "Loading servable version" not in server.process.log()

            shutil.copy(SEED_VERSION_DIR / "saved_model.pb", partial / "saved_model.pb.tmp")
            (partial / "saved_model.pb.tmp").rename(partial / "saved_model.pb")
            wait_for(server.model_available, what="version 1 available")
            assert predict_stub.Predict(request, timeout=30).model_spec.version.value == 1
    finally:
        server.stop()


CONFIG = """
model_config_list {
  config {
    name: "every"
    base_path: "%(every)s"
    model_platform: "tensorflow"
    model_version_policy { all {} }
  }
  config {
    name: "pinned"
    base_path: "%(pinned)s"
    model_version_policy { specific { versions: 1 } }
    version_labels { key: "stable" value: 1 }
  }
  config {
    name: "newest_two"
    base_path: "%(newest_two)s"
    model_version_policy { latest { num_versions: 2 } }
  }
}
"""


def test_model_config_file_with_version_policies(tmp_path, logs_dir):
    bases = {name: tmp_path / name for name in ("every", "pinned", "newest_two")}
    for base in bases.values():
        for version in (1, 2, 3):
            publish_version(base, version)
    (bases["every"] / "labels.json").write_text("[]")  # beside the versions, not a version
    config = tmp_path / "models.config"
    config.write_text(CONFIG % {name: str(path) for name, path in bases.items()})
    server = start_model_server("every", bases["every"], logs_dir,
                                f"--model_config_file={config}", *FAST_POLL,
                                # TF Serving's rule: no label on a version not loaded yet, which
                                # at start-up is every version, unless this flag allows it.
                                "--allow_version_labels_for_unavailable_models")
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            model_stub = model_service_pb2_grpc.ModelServiceStub(channel)
            wait_for(lambda: len(states(model_stub, "every")) == 3
                     and all(s[0] == AVAILABLE for s in states(model_stub, "every").values()),
                     what="all versions of 'every'")
            wait_for(lambda: len(states(model_stub, "newest_two")) == 2, what="newest_two")
            wait_for(lambda: server.model_available(), what="pinned")

            assert set(states(model_stub, "every")) == {1, 2, 3}
            assert set(states(model_stub, "pinned")) == {1}
            assert set(states(model_stub, "newest_two")) == {2, 3}

            def version_of(model, **spec):
                request = predict_request(GREY_IMAGE, model=model, **spec)
                return predict_stub.Predict(request, timeout=30).model_spec.version.value

            assert [version_of("every", version=v) for v in (1, 2, 3)] == [1, 2, 3]
            assert version_of("every") == 3
            assert version_of("pinned") == 1
            assert version_of("newest_two") == 3
            assert version_of("newest_two", version=2) == 2
            labelled = predict_request(GREY_IMAGE, model="pinned")
            labelled.model_spec.version_label = "stable"
            assert predict_stub.Predict(labelled, timeout=30).model_spec.version.value == 1
            for model, version in (("pinned", 2), ("newest_two", 1)):
                error = error_of(predict_stub.Predict,
                                 predict_request(GREY_IMAGE, model=model, version=version))
                assert error.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()
