"""One prediction: signature -> decode in the worker pool -> Predict -> ranked labels."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial

import numpy as np

from app.core import memory
from app.decode_budget import DecodeBudget
from app.imaging import decode_cost, image_to_tensor
from app.labels import Label
from app.prediction import build_prediction
from app.schemas import ModelInfo, PredictionResponse
from app.tfserving.client import ModelFailed, TFServingClient
from app.tfserving.signature import Signature

# Decodes needing more than this give their memory back to the system as soon as they end.
TRIM_AFTER_BYTES = 64 * 1024 * 1024


class LabelsMismatch(Exception):
    """labels.json and the model disagree on the number of classes (a deployment error)."""


class Predictor:
    """Holds what a prediction needs for the life of the process."""

    def __init__(self, client: TFServingClient, labels: tuple[Label, ...], decode_pool: Executor,
                 *, max_pixels: int, low_confidence_threshold: float,
                 decode_budget: DecodeBudget | None = None, min_image_side: int = 1,
                 min_pixel_spread: float = 0.0) -> None:
        self.client = client
        self.labels = labels
        self.decode_pool = decode_pool
        self.max_pixels = max_pixels
        self.low_confidence_threshold = low_confidence_threshold
        self.decode_budget = decode_budget
        self.min_image_side = min_image_side
        self.min_pixel_spread = min_pixel_spread

    async def signature(self) -> Signature:
        """The served signature, checked against the labels."""
        signature = await self.client.signature()
        if signature.num_classes is not None and signature.num_classes != len(self.labels):
            raise LabelsMismatch(
                f"The labels file lists {len(self.labels)} classes but model "
                f"{signature.model_name!r} version {signature.version} outputs "
                f"{signature.num_classes}.")
        return signature

    async def predict(self, image: bytes, request_id: str) -> PredictionResponse:
        """Classify one uploaded photo (raises ImageRejected or ModelServerError subclasses)."""
        signature = await self.signature()
        budget = self.decode_budget
        decode = partial(image_to_tensor, image, height=signature.height, width=signature.width,
                         max_pixels=self.max_pixels, min_short_side=self.min_image_side,
                         min_spread=self.min_pixel_spread,
                         max_decode_bytes=budget.capacity if budget else None)
        # Pillow releases the GIL while decoding and resizing: threads decode in parallel and the
        # event loop keeps serving other requests.
        if budget is None:
            tensor = await asyncio.get_running_loop().run_in_executor(self.decode_pool, decode)
        else:
            # The header alone (microseconds) says how much memory the decode will take.
            cost = decode_cost(image, height=signature.height, width=signature.width,
                               max_pixels=self.max_pixels)
            tensor = await budget.run(self.decode_pool, cost,
                                      _trimmed(decode) if cost > TRIM_AFTER_BYTES else decode)
        output = await self.client.predict(signature, tensor)
        if output.values.size != len(self.labels):
            raise LabelsMismatch(f"The labels file lists {len(self.labels)} classes but the "
                                 f"model returned {output.values.size} values.")
        if not np.isfinite(output.values).all():
            raise ModelFailed("the model returned non-finite probabilities")
        return build_prediction(output.values.tolist(), self.labels,
                                threshold=self.low_confidence_threshold,
                                model=ModelInfo(name=output.model_name, version=output.version),
                                request_id=request_id)


def _trimmed(decode: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
    """decode(), then malloc_trim in the same thread (its arena is the one that grew)."""
    def run() -> np.ndarray:
        try:
            return decode()
        finally:
            memory.trim()
    return run
