"""Keras model -> TF Serving SavedModel: one `serving_default` predict signature with named keys.

Keras 3's ExportArchive writes a TF2 SavedModel whose MetaGraph also loads through the v1
SignatureDef loader (`tf.compat.v1.saved_model.loader.load`), which is how TF Serving and
scripts/model-server load models.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.util import deprecation


def export_saved_model(model: keras.Model, path: Path, input_key: str, output_key: str) -> None:
    """Write `model` as a SavedModel at path: serving_default(input_key) -> {output_key}."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("only single-input, single-output models are supported "
                         f"(this one has {len(model.inputs)} inputs, {len(model.outputs)} outputs)")
    shape = [None, *model.inputs[0].shape[1:]]
    spec = tf.TensorSpec(shape, tf.float32, name=input_key)

    def serve(tensor):
        return {output_key: model(tensor, training=False)}

    serve.__name__ = "serving_default"
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    assets = path / "assets"
    if assets.is_dir() and not any(assets.iterdir()):
        assets.rmdir()  # git cannot keep an empty directory: keep the files and the tree equal


def load_signature(path: Path, signature: str = "serving_default"):
    """Load a SavedModel the way TF Serving does (v1 SignatureDef loader).

    Returns (session, {input key: tensor name}, {output key: tensor name}, method name); the
    caller closes the session."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        # The v1 loader is deprecated in TF 2 but is TF Serving's way (above): its deprecation
        # notices (printed once per call, and twice where the root logger has a handler too)
        # would only alarm a user of the publishing tools.
        with graph.as_default(), deprecation.silence():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        sig = meta.signature_def[signature]
    except BaseException:
        session.close()
        raise
    inputs = {k: v.name for k, v in sig.inputs.items()}
    outputs = {k: v.name for k, v in sig.outputs.items()}
    return session, inputs, outputs, sig.method_name


def check_served_like_keras(model: keras.Model, path: Path, sample: np.ndarray,
                            atol: float = 1e-5) -> float:
    """Run sample through the exported signature (v1 loader) and through Keras; return the max
    abs difference, raising if it exceeds atol."""
    session, inputs, outputs, method = load_signature(path)
    try:
        if method != "tensorflow/serving/predict":
            raise ValueError(f"signature method is {method!r}, not tensorflow/serving/predict")
        (feed,), (fetch,) = inputs.values(), outputs.values()
        served = session.run(fetch, {feed: sample})
    finally:
        session.close()
    expected = np.asarray(model(sample, training=False))
    diff = float(np.abs(served - expected).max())
    if diff > atol:
        raise ValueError(f"exported model differs from Keras by {diff} (> {atol})")
    return diff
