"""The article's model gives the same probabilities on our tensors as on its own preprocessing.

In-process TensorFlow on the seed SavedModel: image_to_tensor (draft decode, EXIF, BICUBIC) against
the article's pipeline (full decode, RGB, default-filter resize, / 255) on the real leaf photos and
on 12 MP phone-sized versions of them. The measured differences are written to
test-artifacts/imaging-fidelity.json and quoted in docs/api-benchmarks.md.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import leafsynth
from app.imaging import dct_scale, image_to_tensor
from tests.support.paths import SEED_MODEL_BASE_PATH

pytestmark = pytest.mark.slow

TOLERANCE = 0.01
PHONE_SIZE = (4000, 3000)  # 12 MP


def reference_tensor(data: bytes) -> np.ndarray:
    """The article's read_convert_image."""
    with Image.open(io.BytesIO(data)) as image:
        resized = image.convert("RGB").resize((150, 150))
    return np.expand_dims(np.float32(np.array(resized) / 255.0), 0)


def our_tensor(data: bytes) -> np.ndarray:
    return image_to_tensor(data, height=150, width=150, max_pixels=40_000_000)


def jpeg(image: Image.Image, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **save_kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def seed_model() -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """The article's SavedModel in a TF1 session (tf.saved_model.load cannot read it)."""
    import tensorflow as tf  # here, so collecting the fast tests does not pay for TensorFlow

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], str(SEED_MODEL_BASE_PATH / "1")
        )
        signature = meta_graph.signature_def["serving_default"]
        input_name = signature.inputs["conv2d_4_input"].name
        output_name = signature.outputs["dense_3"].name
        yield lambda batch: session.run(output_name, {input_name: batch})[0]


@pytest.fixture(scope="module")
def measured(artifacts_dir: Path) -> Iterator[dict[str, float]]:
    results: dict[str, float] = {}
    yield results
    report = artifacts_dir / "imaging-fidelity.json"
    previous = json.loads(report.read_text()) if report.exists() else {}
    report.write_text(json.dumps({**previous, **results}, indent=2, sort_keys=True) + "\n")


def max_probability_difference(predict, ours: bytes, reference: bytes) -> float:
    return float(np.abs(predict(our_tensor(ours)) - predict(reference_tensor(reference))).max())


@pytest.mark.parametrize("index", [0, 1, 2])
def test_real_photos(seed_model, measured, leaf_photo_paths, index):
    photo = leaf_photo_paths[index]
    data = photo.read_bytes()
    difference = max_probability_difference(seed_model, data, data)
    measured[f"{photo.name} 800x600"] = difference
    assert difference <= TOLERANCE


def resized(photo: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(photo) as image:
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize(
    ("size", "scale"),
    [
        ((1600, 1200), 2),
        ((2400, 1800), 2),
        ((3200, 2400), 4),
        ((3264, 2448), 4),
        (PHONE_SIZE, 8),
        ((4032, 3024), 8),
    ],
    ids=["1/2-at-margin", "1/2", "1/4-at-margin", "1/4", "12MP-1/8-at-margin", "1/8"],
)
def test_real_photos_upscaled_to_every_dct_scale(
    seed_model, measured, leaf_photo_paths, index, size, scale
):
    assert dct_scale(size, (150, 150)) == scale
    photo = leaf_photo_paths[index]
    data = jpeg(resized(photo, size))
    difference = max_probability_difference(seed_model, data, data)
    measured[f"{photo.name} {size[0]}x{size[1]}"] = difference
    assert difference <= TOLERANCE


@pytest.mark.parametrize("index", [0, 1, 2])
def test_12_megapixel_portrait_with_exif_rotation(seed_model, measured, leaf_photo_paths, index):
    # A phone held upright stores a landscape frame tagged "rotate 90 CW" (orientation 6). Ours on
    # that file must match the article's pipeline on the same scene stored upright.
    photo = leaf_photo_paths[index]
    upright = resized(photo, PHONE_SIZE[::-1])
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    difference = max_probability_difference(seed_model, stored, jpeg(upright))
    measured[f"{photo.name} 3000x4000 EXIF 6"] = difference
    assert difference <= TOLERANCE


@pytest.mark.parametrize("label", leafsynth.CLASSES)
@pytest.mark.parametrize("size", [(800, 600), PHONE_SIZE], ids=["800x600", "12MP"])
def test_synthetic_leaves(seed_model, measured, label, size):
    data = leafsynth.encode(leafsynth.render(label, seed=11, size=size), "JPEG", quality=92)
    difference = max_probability_difference(seed_model, data, data)
    measured[f"leafsynth {label} {size[0]}x{size[1]}"] = difference
    assert difference <= TOLERANCE
