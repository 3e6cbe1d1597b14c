"""Predictor.predict_many: decoding in the pool, one batched call, answers back in file order.

The model server is a stand-in here (fast tier: no servers): it records the shape of every
Predict call and answers each image with a row derived from its pixels, so every answer can be
traced back to its photo. The real model server's side: test_predict_batch.py."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from app.imaging import EmptyImage, TruncatedImage, UnsupportedImageFormat
from app.labels import Label
from app.predictor import Predictor
from app.schemas import PredictionResponse
from app.tfserving.client import ModelOutput
from app.tfserving.signature import Signature

LABELS = tuple(Label(code, code) for code in ("A", "B", "C"))


class PixelModel:
    """Answers class A, B or C for a mostly red, green or blue image; records each call."""

    def __init__(self, batch: int) -> None:
        self.calls: list[tuple[int, ...]] = []
        self._signature = Signature(model_name="m", version=7, name="serving_default",
                                    input_name="x", height=8, width=8, output_name="y",
                                    num_classes=3, batch=batch)

    async def signature(self) -> Signature:
        return self._signature

    async def predict(self, signature: Signature, images: np.ndarray) -> ModelOutput:
        self.calls.append(images.shape)
        means = images.mean(axis=(1, 2))  # (n, 3): mean red, green, blue
        rows = means / means.sum(axis=1, keepdims=True)
        return ModelOutput(rows=rows.astype(np.float64), model_name="m", version=7)


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


RED, GREEN, BLUE = png((200, 20, 20)), png((20, 200, 20)), png((20, 20, 200))


def run(model: PixelModel, files: list[bytes]) -> list:
    async def go() -> list:
        with ThreadPoolExecutor(2) as pool:
            predictor = Predictor(model, LABELS, pool, max_pixels=10**6,  # type: ignore[arg-type]
                                  low_confidence_threshold=0.5)
            return await predictor.predict_many([lambda data=data: data for data in files], "r1")
    return asyncio.run(go())


def test_one_call_for_the_usable_photos_and_answers_in_file_order() -> None:
    model = PixelModel(batch=-1)
    outcomes = run(model, [BLUE, b"GIF89a", RED, RED[:60], GREEN])
    assert model.calls == [(3, 8, 8, 3)]
    assert [type(o) for o in outcomes] == [PredictionResponse, UnsupportedImageFormat,
                                           PredictionResponse, TruncatedImage,
                                           PredictionResponse]
    assert [o.code for o in outcomes if isinstance(o, PredictionResponse)] == ["C", "A", "B"]
    assert all(o.model.version == 7 and o.request_id == "r1" for o in outcomes
               if isinstance(o, PredictionResponse))


def test_a_model_taking_one_image_per_call_gets_one_call_per_photo() -> None:
    model = PixelModel(batch=1)
    outcomes = run(model, [GREEN, b"", BLUE])
    assert model.calls == [(1, 8, 8, 3), (1, 8, 8, 3)]
    assert [getattr(o, "code", None) for o in outcomes] == ["B", None, "C"]


def test_no_usable_photo_no_call() -> None:
    model = PixelModel(batch=-1)
    assert [type(o) for o in run(model, [b"", b"text"])] == [
        EmptyImage, UnsupportedImageFormat]
    assert model.calls == []
