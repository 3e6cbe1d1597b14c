"""The article's reference pipeline, the yardstick of tests and benchmarks: its preprocessing
(numpy and Pillow only, so it also runs in the benchmarks' isolated virtualenvs) and its
SavedModel run in-process by TensorFlow (imported only when a model is loaded)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.support.paths import SEED_MODEL_BASE_PATH

SEED_VERSION_DIR = SEED_MODEL_BASE_PATH / "1"
SEED_INPUT, SEED_OUTPUT = "conv2d_4_input", "dense_3"
ARTICLE_SIZE = (150, 150)


def article_preprocess(data: bytes) -> np.ndarray:
    """The article's read_convert_image: full decode, RGB, Pillow's default-filter resize to
    150x150, / 255, as a float32 batch of one."""
    with Image.open(io.BytesIO(data)) as image:
        resized = image.convert("RGB").resize(ARTICLE_SIZE)
    return np.expand_dims(np.float32(np.asarray(resized) / 255.0), 0)


def article_input(photo: Path) -> np.ndarray:
    """article_preprocess of a photo file."""
    return article_preprocess(photo.read_bytes())


@dataclass
class ReferenceModel:
    """A SavedModel signature in a TF1 session: `model(batch)` is the output batch."""

    session: Any
    input_name: str  # the signature's input key, e.g. conv2d_4_input
    output_name: str
    run: Callable[[np.ndarray], np.ndarray]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)

    def close(self) -> None:
        self.session.close()


def load_reference_model(version_dir: Path = SEED_VERSION_DIR,
                         signature_name: str = "serving_default") -> ReferenceModel:
    """Load a version directory with TensorFlow's v1 SignatureDef loader (the way TF Serving loads
    models; tf.saved_model.load cannot read the article's model) and make its one-input,
    one-output signature a callable."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(version_dir))
    signature = meta_graph.signature_def[signature_name]
    ((input_name, input_info),) = signature.inputs.items()
    ((output_name, output_info),) = signature.outputs.items()
    run = session.make_callable(graph.get_tensor_by_name(output_info.name),
                                feed_list=[graph.get_tensor_by_name(input_info.name)])
    return ReferenceModel(session, input_name, output_name, run)
