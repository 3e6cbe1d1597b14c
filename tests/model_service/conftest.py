"""Fixtures for the model server's tests: leaf photos as model inputs, gRPC stubs and scratch
model repositories. TensorFlow and the official stubs are imported inside the fixtures, so that
collecting this directory's light tests does not load TensorFlow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.support.model_server import RunningModelServer
from tests.support.paths import SEED_MODEL_H5
from tests.support.reference import article_input


@pytest.fixture(scope="session")
def leaf_inputs(leaf_photo_paths: list[Path]) -> dict[str, np.ndarray]:
    """The real leaf photos, each through the article's preprocessing."""
    return {photo.name: article_input(photo) for photo in leaf_photo_paths}


@pytest.fixture(scope="module")
def channel(seed_model_server: RunningModelServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(seed_model_server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def prediction_stub(channel: grpc.Channel) -> Any:
    """tensorflow_serving's PredictionServiceStub on the seed model server."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_stub(channel: grpc.Channel) -> Any:
    """tensorflow_serving's ModelServiceStub on the seed model server."""
    from tensorflow_serving.apis import model_service_pb2_grpc

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
