"""Why the server loads SavedModels by their SignatureDefs (the v1 loader), as TF Serving does."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from model_server import servable
from model_server.errors import ServingError
from tests.model_service.clients import INPUT, OUTPUT, SEED_VERSION_DIR

pytestmark = pytest.mark.slow


def test_signature_def_loader_serves_the_articles_model(reference_predict):
    model = servable.load("saved_model", 1, SEED_VERSION_DIR, ["serve"])
    try:
        signature = model.signature("")  # the default: serving_default
        assert signature.name == "serving_default"
        assert signature.input_order == (INPUT,)
        batch = np.random.default_rng(0).random((2, 150, 150, 3), dtype=np.float32)
        outputs = signature.run({INPUT: batch}, (OUTPUT,))
        np.testing.assert_allclose(outputs[OUTPUT], reference_predict(batch), atol=1e-6)
    finally:
        model.unload()


def test_garbage_saved_model_is_data_loss(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"\x00garbage")
    with pytest.raises(ServingError) as failure:
        servable.load("broken", 1, tmp_path, ["serve"])
    assert failure.value.code == grpc.StatusCode.DATA_LOSS


def test_missing_tags_are_reported_like_tf_serving():
    with pytest.raises(ServingError) as failure:
        servable.load("saved_model", 1, SEED_VERSION_DIR, ["gpu"])
    assert failure.value.code == grpc.StatusCode.NOT_FOUND
    assert "Could not find meta graph def matching supplied tags: { gpu }" in str(failure.value)
