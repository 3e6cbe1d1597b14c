"""PredictionService.predict_many: decoding in the pool, one batched call, answers back in file
order.

The model server is tests/support's stand-in (fast tier: no servers): it records every
Predict call and answers each image with a row derived from its pixels, so every answer can be
traced back to its photo. The real model server's side: test_predict_batch.py."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from app.decode_budget import BudgetExhausted, DecodeBudget
from app.imaging import BlankImage, EmptyImage, TruncatedImage, UnsupportedImageFormat
from app.labels import Label
from app.prediction_service import PredictionService
from app.schemas import PredictionResponse
from app.tfserving.client import ModelFailed, ModelOutput
from app.tfserving.signature import Signature
from tests.support.decode_budget import holding
from tests.support.fake_model_server import FakeModelServer
from tests.support.waiting import wait_until_async

LABELS = tuple(Label(code, code) for code in ("A", "B", "C"))


def colour_shares(images: np.ndarray) -> np.ndarray:
    """Class A, B or C for a mostly red, green or blue image: its mean red, green, blue shares."""
    means = images.mean(axis=(1, 2))  # (n, 3)
    return (means / means.sum(axis=1, keepdims=True)).astype(np.float64)


def pixel_model(batch: int) -> FakeModelServer:
    """An 8x8-input, three-class model answering from each image's colours."""
    return FakeModelServer(model_name="m", version=7, num_classes=3, input_name="x",
                           output_name="y", height=8, width=8, batch=batch,
                           rows_for=colour_shares)


def calls(model: FakeModelServer) -> list[tuple[int, ...]]:
    """The shape of every Predict call's input, in order."""
    return [images.shape for images in model.received]


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    return buffer.getvalue()


RED, GREEN, BLUE = png((200, 20, 20)), png((20, 200, 20)), png((20, 20, 200))


def run(model: FakeModelServer, files: list[bytes]) -> list:
    async def go() -> list:
        with ThreadPoolExecutor(2) as pool:
            service = PredictionService(
                model, LABELS, pool, max_pixels=10**6,  # type: ignore[arg-type]
                low_confidence_threshold=0.5)
            return await service.predict_many([lambda data=data: data for data in files], "r1")
    return asyncio.run(go())


def test_one_call_for_the_usable_photos_and_answers_in_file_order() -> None:
    model = pixel_model(batch=-1)
    outcomes = run(model, [BLUE, b"GIF89a", RED, RED[:60], GREEN])
    assert calls(model) == [(3, 8, 8, 3)]
    assert [type(o) for o in outcomes] == [PredictionResponse, UnsupportedImageFormat,
                                           PredictionResponse, TruncatedImage,
                                           PredictionResponse]
    assert [o.code for o in outcomes if isinstance(o, PredictionResponse)] == ["C", "A", "B"]
    assert all(o.model.version == 7 and o.request_id == "r1" for o in outcomes
               if isinstance(o, PredictionResponse))


def test_a_model_taking_one_image_per_call_gets_one_call_per_photo() -> None:
    model = pixel_model(batch=1)
    outcomes = run(model, [GREEN, b"", BLUE])
    assert calls(model) == [(1, 8, 8, 3), (1, 8, 8, 3)]
    assert [getattr(o, "code", None) for o in outcomes] == ["B", None, "C"]


def test_no_usable_photo_no_call() -> None:
    model = pixel_model(batch=-1)
    assert [type(o) for o in run(model, [b"", b"text"])] == [
        EmptyImage, UnsupportedImageFormat]
    assert calls(model) == []


class SwitchedModel(FakeModelServer):
    """Version 8 with another input size replaced version 7 after the signature was read: the
    first Predict built for 7 is refused (as TF Serving refuses unknown keys or shapes)."""

    async def predict(self, signature: Signature, images: np.ndarray,
                      label: str | None = None) -> ModelOutput:
        if signature.version == 7:
            self.received.append(images)
            # The new version; the client dropped its cached signature.
            self.version, self.input_name, self.output_name = 8, "x2", "y2"
            self.height = self.width = 16
            raise ModelFailed("input size mismatch")
        return await super().predict(signature, images)


def test_a_signature_change_after_a_version_switch_is_retried_once_with_the_new_one() -> None:
    model = SwitchedModel(model_name="m", version=7, num_classes=3, input_name="x",
                          output_name="y", height=8, width=8, rows_for=colour_shares)
    outcomes = run(model, [RED, b"", BLUE])
    assert calls(model) == [(2, 8, 8, 3), (2, 16, 16, 3)]  # decoded again at the new size
    assert [getattr(o, "code", None) for o in outcomes] == ["A", None, "C"]


class BrokenModel(FakeModelServer):
    async def predict(self, signature: Signature, images: np.ndarray,
                      label: str | None = None) -> ModelOutput:
        self.received.append(images)
        raise ModelFailed("the model failed")


def test_a_failure_with_an_unchanged_signature_is_not_retried() -> None:
    model = BrokenModel(model_name="m", version=7, num_classes=3, height=8, width=8)
    with pytest.raises(ModelFailed):
        run(model, [RED, GREEN])
    assert calls(model) == [(2, 8, 8, 3)]


def frames_of(error: BaseException) -> list:
    """Every frame a rejected photo's exception keeps alive, through its cause and context."""
    frames, seen = [], set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback = current.__traceback__
        while traceback is not None:
            frames.append(traceback.tb_frame)
            traceback = traceback.tb_next
        pending += [current.__cause__, current.__context__]
    return frames


def test_a_refused_photo_keeps_no_decoded_image_alive() -> None:
    # A blank 2000x2000 PNG is decoded in full, then refused: the exception answered in its place
    # lives until the reply is sent, and must not hold the 16 MB image (issue 20: 16 such parts
    # kept ~3 GiB resident).
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 2000), (90, 90, 90)).save(buffer, "PNG")
    model = pixel_model(batch=-1)

    async def go() -> list:
        with ThreadPoolExecutor(2) as pool:
            service = PredictionService(
                model, LABELS, pool, max_pixels=10**7,  # type: ignore[arg-type]
                low_confidence_threshold=0.5, min_pixel_spread=0.015,
                decode_budget=DecodeBudget(10**9, max_wait=5))
            return await service.predict_many([buffer.getvalue], "r1")

    (blank,) = asyncio.run(go())
    assert isinstance(blank, BlankImage)
    held = [value for frame in frames_of(blank) for value in frame.f_locals.values()
            if isinstance(value, Image.Image) and value.width * value.height > 64 * 64]
    assert held == []


def test_parts_that_do_not_get_the_decode_budget_in_time_are_refused_in_their_place() -> None:
    model = pixel_model(batch=-1)

    async def go() -> list:
        with ThreadPoolExecutor(3) as pool:
            budget = DecodeBudget(10**6, max_wait=0.05)
            service = PredictionService(
                model, LABELS, pool, max_pixels=10**6,  # type: ignore[arg-type]
                low_confidence_threshold=0.5, decode_budget=budget)
            async with holding(budget, pool, 10**6):
                return await service.predict_many([lambda: RED, lambda: b""], "r1")

    busy, empty = asyncio.run(go())
    assert isinstance(busy, BudgetExhausted) and isinstance(empty, EmptyImage)
    assert calls(model) == []


def test_a_batch_queues_at_most_its_share_of_parts_for_the_decode_budget() -> None:
    # While the budget is held, a batch of six puts only `decodes_per_batch` parts in its queue:
    # a photo from another client queued after them is decoded before the batch's other parts.
    model = pixel_model(batch=-1)
    waiting: list[int] = []

    async def go() -> list:
        with ThreadPoolExecutor(3) as pool:
            budget = DecodeBudget(10**6, max_wait=5)
            service = PredictionService(
                model, LABELS, pool, max_pixels=10**6,  # type: ignore[arg-type]
                low_confidence_threshold=0.5, decode_budget=budget, decodes_per_batch=2)
            async with holding(budget, pool, 10**6):
                many = asyncio.ensure_future(service.predict_many([lambda: RED] * 6, "r1"))

                await wait_until_async(lambda: budget.waiting >= 2, 5, "two parts queued",
                                       every=0.01)
                # Queuing more parts needs no other event than the loop turning: let it turn.
                for _ in range(50):
                    await asyncio.sleep(0)
                waiting.append(budget.waiting)
            return await many

    outcomes = asyncio.run(go())
    assert waiting == [2]
    assert all(isinstance(outcome, PredictionResponse) for outcome in outcomes)
