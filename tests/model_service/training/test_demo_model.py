"""The bundled demo model (model.service/models/cassava): commit-ready, loadable the way TF Serving
loads models, and — served over real gRPC — accurate on synthetic leaves it has never seen."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

import leafsynth
from tests.model_service.clients import metadata_request, output_of, predict_request
from tests.support.paths import DEMO_MODEL_NAME, MODEL_REPOSITORY
from training.evaluate import fresh_set
from training.export import load_signature
from training.train import INPUT_KEY, OUTPUT_KEY

MODEL_DIR = MODEL_REPOSITORY / DEMO_MODEL_NAME
PER_CLASS = 60


def test_repository_holds_version_1_labels_and_model_card_only():
    assert sorted(p.name for p in MODEL_DIR.iterdir()) == ["1", "labels.json", "model.json"]
    assert (MODEL_DIR / "1" / "saved_model.pb").is_file()
    assert (MODEL_DIR / "1" / "variables" / "variables.index").is_file()


def test_demo_model_is_small():
    size = sum(p.stat().st_size for p in (MODEL_DIR / "1").rglob("*") if p.is_file())
    assert size < 5 * 1024 * 1024


def test_labels_follow_the_contract():
    labels = json.loads((MODEL_DIR / "labels.json").read_text())
    assert [label["code"] for label in labels] == list(leafsynth.CLASSES)
    assert [label["name"] for label in labels] == [
        "Cassava Bacterial Blight (CBB)", "Cassava Brown Streak Disease (CBSD)",
        "Cassava Green Mottle (CGM)", "Cassava Mosaic Disease (CMD)", "Healthy"]
    assert "mite" in labels[2]["aka"].lower()
    assert all(label["description"] for label in labels)


def test_loads_through_the_v1_signature_loader():
    session, inputs, outputs, method = load_signature(MODEL_DIR / "1")
    try:
        assert method == "tensorflow/serving/predict"
        assert (list(inputs), list(outputs)) == ([INPUT_KEY], [OUTPUT_KEY])
        batch = np.random.default_rng(0).random((3, 150, 150, 3), dtype=np.float32)
        probabilities = session.run(outputs[OUTPUT_KEY], {inputs[INPUT_KEY]: batch})
    finally:
        session.close()
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_served_demo_model_signature(demo_model_server):
    with grpc.insecure_channel(demo_model_server.grpc_target) as channel:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            metadata_request(DEMO_MODEL_NAME), timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    reply.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert [d.size for d in signature.inputs[INPUT_KEY].tensor_shape.dim] == [-1, 150, 150, 3]
    assert [d.size for d in signature.outputs[OUTPUT_KEY].tensor_shape.dim] == [-1, 5]


@pytest.mark.slow
def test_served_demo_model_recognises_fresh_synthetic_leaves(demo_model_server):
    images, truth = fresh_set(PER_CLASS)  # JPEG photos of sizes training never rendered
    with grpc.insecure_channel(demo_model_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        replies = [stub.Predict(predict_request(images[i:i + 50], model=DEMO_MODEL_NAME,
                                                input_name=INPUT_KEY), timeout=60)
                   for i in range(0, len(images), 50)]
    probabilities = np.concatenate([output_of(reply, OUTPUT_KEY) for reply in replies])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    confusion = np.zeros((5, 5), np.int64)
    np.add.at(confusion, (truth, probabilities.argmax(axis=1)), 1)
    accuracy = np.trace(confusion) / confusion.sum()
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f}\n{confusion}"
    assert recall.min() >= 0.75, f"recall per class {recall}\n{confusion}"
