"""scripts/convert-model: the article's h5 -> a served SavedModel version equal to Keras' own
predict(); next versions, refusal to overwrite, clear errors, never a half-written version."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from model_server.repository import scan_versions
from tests.model_service.clients import (
    INPUT,
    OUTPUT,
    metadata_request,
    output_of,
    predict_request,
)
from tests.support.model_server import start_model_server
from tests.support.paths import SCRIPTS_DIR, SEED_LABELS, SEED_MODEL_BASE_PATH, SEED_MODEL_H5
from training.card import read_cards
from training.convert import convert
from training.export import load_signature
from training.repository import PublishError, VersionExistsError, publish_version, versions

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5
NAME = "article"


def run_convert(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPTS_DIR / "convert-model", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def tree_digest(root: Path) -> str:
    """The SavedModel's files (assets.extra/, where the on-device artifact goes, left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")
                       if p.is_file() and "assets.extra" not in p.relative_to(root).parts):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """A fresh repository holding the article's h5 converted by the real command (version 1)."""
    repo = tmp_path_factory.mktemp("repository")
    result = run_convert(SEED_MODEL_H5, repo, "--name", NAME, "--labels", SEED_LABELS)
    assert result.returncode == 0, result.stderr
    assert f"{repo / NAME / '1'}" in result.stdout
    return repo


@pytest.fixture(scope="module")
def converted_server(repository, logs_dir):
    server = start_model_server(NAME, repository / NAME, logs_dir)
    yield server
    server.stop()


def test_served_conversion_equals_keras_predict(converted_server, leaf_inputs, keras_predict):
    with grpc.insecure_channel(converted_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for name, batch in leaf_inputs.items():
            reply = stub.Predict(predict_request(batch, model=NAME), timeout=30)
            served = output_of(reply)
            assert reply.model_spec.version.value == 1
            assert served.shape == (1, 5)
            assert np.max(np.abs(served - keras_predict(batch))) <= TOLERANCE, name
        everything = np.concatenate(list(leaf_inputs.values()))
        served = output_of(stub.Predict(predict_request(everything, model=NAME), timeout=30))
        assert np.max(np.abs(served - keras_predict(everything))) <= TOLERANCE


def test_conversion_keeps_the_articles_signature_names(converted_server):
    with grpc.insecure_channel(converted_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.GetModelMetadata(metadata_request(NAME), timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    reply.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert list(signature.inputs) == [INPUT]
    assert list(signature.outputs) == [OUTPUT]
    assert [d.size for d in signature.inputs[INPUT].tensor_shape.dim] == [-1, 150, 150, 3]
    assert [d.size for d in signature.outputs[OUTPUT].tensor_shape.dim] == [-1, 5]


def test_labels_are_copied_beside_the_versions(repository):
    copied = json.loads((repository / NAME / "labels.json").read_text())
    assert copied == json.loads(SEED_LABELS.read_text())


def test_the_on_device_artifact_is_published_with_the_version(repository):
    """training/on_device.py: beside the SavedModel in assets.extra/, described by the card
    (tests/model_service/training/test_on_device.py tests the gate itself)."""
    entry = read_cards(repository / NAME)["1"]["on_device"]
    content = (repository / NAME / "1" / "assets.extra" / "model.tflite").read_bytes()
    assert (entry["sha256"], entry["bytes"], entry["quantization"]) == (
        hashlib.sha256(content).hexdigest(), len(content), "dynamic_range")


def test_a_minimal_model_card_is_written_beside_the_labels(repository):
    card = read_cards(repository / NAME)["1"]
    assert card["demo"] is False
    assert card["source"] == {"file": "best-model.h5", "size": SEED_MODEL_H5.stat().st_size,
                              "sha256": hashlib.sha256(SEED_MODEL_H5.read_bytes()).hexdigest()}
    assert "no model card was supplied" in card["description"]


def test_card_option_fills_the_card_and_a_bad_one_publishes_nothing(tmp_path):
    fields = tmp_path / "card.json"
    fields.write_text(json.dumps({"name": "Mine", "licence": "Apache-2.0",
                                  "limitations": ["Only tested on one field."]}))
    result = run_convert(SEED_MODEL_BASE_PATH / "1", tmp_path / "repo", "--card", fields)
    assert result.returncode == 0, result.stderr
    card = read_cards(tmp_path / "repo" / "cassava")["1"]
    assert (card["name"], card["licence"], card["limitations"], card["demo"]) == (
        "Mine", "Apache-2.0", ["Only tested on one field."], False)

    fields.write_text(json.dumps({"demo": "maybe"}))
    result = run_convert(SEED_MODEL_BASE_PATH / "1", tmp_path / "repo", "--card", fields)
    assert result.returncode == 1
    assert "demo: Input should be a valid boolean" in result.stderr
    assert versions(tmp_path / "repo" / "cassava") == [1]


def test_second_conversion_is_version_2_and_the_server_switches(repository, converted_server):
    before = tree_digest(repository / NAME / "1")
    result = run_convert(SEED_MODEL_H5, repository, "--name", NAME)
    assert result.returncode == 0, result.stderr
    assert versions(repository / NAME) == [1, 2]
    assert tree_digest(repository / NAME / "1") == before
    converted_server.process.wait_until(lambda: converted_server.model_available(2), 60,
                                        "version 2 AVAILABLE")
    with grpc.insecure_channel(converted_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        reply = stub.Predict(predict_request(np.zeros((1, 150, 150, 3), np.float32),
                                             model=NAME), timeout=30)
    assert reply.model_spec.version.value == 2


def test_refuses_to_overwrite_an_existing_version(repository):
    before = tree_digest(repository / NAME / "1")
    result = run_convert(SEED_MODEL_H5, repository, "--name", NAME, "--version", "1")
    assert result.returncode == 1
    assert "version 1 already exists" in result.stderr
    assert tree_digest(repository / NAME / "1") == before
    assert not [p for p in (repository / NAME).iterdir() if p.name.startswith(".tmp")]


def test_explicit_free_version_number(tmp_path):
    version_dir = convert(SEED_MODEL_H5, tmp_path / NAME, version=7)
    assert version_dir == tmp_path / NAME / "7"
    assert versions(tmp_path / NAME) == [7]


@pytest.mark.parametrize("content, suffix, message", [
    (b"not an hdf5 file", ".h5", "cannot load a Keras model"),
    (b"PK\x03\x04 truncated zip", ".keras", "cannot load a Keras model"),
    (b"{}", ".json", "neither a Keras file"),
])
def test_unreadable_input_is_a_clear_error(tmp_path, content, suffix, message):
    source = tmp_path / f"model{suffix}"
    source.write_bytes(content)
    result = run_convert(source, tmp_path / "repo", "--name", NAME)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert versions(tmp_path / "repo" / NAME) == []


def test_missing_input_and_empty_directory(tmp_path):
    with pytest.raises(PublishError, match="does not exist"):
        convert(tmp_path / "nope.h5", tmp_path / NAME)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PublishError, match="not a SavedModel directory"):
        convert(tmp_path / "empty", tmp_path / NAME)
    assert versions(tmp_path / NAME) == []


def test_labels_that_do_not_match_the_model_are_refused(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([{"code": "A", "name": "A"}, {"code": "B", "name": "B"}]))
    with pytest.raises(PublishError, match="labels list 2 classes but the model outputs 5"):
        convert(SEED_MODEL_H5, tmp_path / NAME, labels=labels)
    labels.write_text(json.dumps({"CBB": "blight"}))
    with pytest.raises(PublishError, match="JSON list"):
        convert(SEED_MODEL_H5, tmp_path / NAME, labels=labels)
    assert versions(tmp_path / NAME) == []
    assert not (tmp_path / NAME / "labels.json").exists()


def test_savedmodel_directory_is_copied_as_the_next_version(tmp_path):
    """The article's own TF 2.4 SavedModel goes in unchanged and still loads like TF Serving."""
    version_dir = convert(SEED_MODEL_BASE_PATH / "1", tmp_path / NAME)
    assert version_dir == tmp_path / NAME / "1"
    assert tree_digest(version_dir) == tree_digest(SEED_MODEL_BASE_PATH / "1")
    assert (version_dir / "assets.extra" / "model.tflite").is_file()
    session, inputs, outputs, _ = load_signature(version_dir)
    session.close()
    assert (list(inputs), list(outputs)) == ([INPUT], [OUTPUT])


def test_a_version_being_written_is_invisible_and_a_failed_one_leaves_nothing(tmp_path):
    model_dir = tmp_path / NAME
    seen_while_writing = []

    def write_then_fail(path: Path) -> None:
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"half a model")
        seen_while_writing.append((versions(model_dir), scan_versions(model_dir)))
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_version(model_dir, write_then_fail)
    assert seen_while_writing == [([], {})]
    assert list(model_dir.iterdir()) == []


def test_publish_refuses_an_existing_version_even_when_empty(tmp_path):
    (tmp_path / NAME / "3").mkdir(parents=True)
    with pytest.raises(VersionExistsError):
        publish_version(tmp_path / NAME, lambda path: path.mkdir(), version=3)
    assert publish_version(tmp_path / NAME, lambda path: path.mkdir()) == tmp_path / NAME / "4"
