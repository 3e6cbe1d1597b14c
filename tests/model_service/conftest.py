"""Fixtures for the model server's tests: the reference inference, leaf photos as model inputs,
gRPC stubs and scratch model repositories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.model_service.clients import INPUT, OUTPUT, SEED_VERSION_DIR
from tests.support.model_server import RunningModelServer
from tests.support.paths import SEED_MODEL_H5


def reference_input(photo: Path) -> np.ndarray:
    """The article's serving preprocessing: RGB, 150x150 (Pillow's default filter), /255, batch."""
    with Image.open(photo) as image:
        array = np.asarray(image.convert("RGB").resize((150, 150)))
    return np.float32(array / 255.0)[np.newaxis]


@pytest.fixture(scope="session")
def leaf_inputs(leaf_photo_paths: list[Path]) -> dict[str, np.ndarray]:
    return {photo.name: reference_input(photo) for photo in leaf_photo_paths}


@pytest.fixture(scope="session")
def reference_predict() -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """In-process TensorFlow inference through the seed model's serving_default signature."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"],
                                                          str(SEED_VERSION_DIR))
    signature = meta_graph.signature_def["serving_default"]
    feed = signature.inputs[INPUT].name
    fetch = signature.outputs[OUTPUT].name

    def predict(batch: np.ndarray) -> np.ndarray:
        return session.run(fetch, {feed: batch})

    yield predict
    session.close()


@pytest.fixture(scope="module")
def channel(seed_model_server: RunningModelServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(seed_model_server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def prediction_stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture
def scratch_repository(tmp_path: Path) -> Path:
    """An empty model base path for a server the test owns."""
    base = tmp_path / "models" / "scratch"
    base.mkdir(parents=True)
    return base


@pytest.fixture(scope="session")
def keras_predict() -> Callable[[np.ndarray], np.ndarray]:
    """In-process Keras predict() of the article's best-model.h5 (as convert-model loads it)."""
    from training.convert import load_keras

    model = load_keras(SEED_MODEL_H5)
    return lambda batch: model.predict(batch, verbose=0)
