"""One prediction: signature -> decode in the worker pool -> Predict -> ranked labels."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from functools import partial

import numpy as np

from app.core import metrics
from app.imaging import image_to_tensor
from app.labels import Label
from app.prediction import build_prediction
from app.schemas import ModelInfo, PredictionResponse
from app.tfserving.client import ModelFailed, TFServingClient
from app.tfserving.signature import Signature

log = logging.getLogger(__name__)


class LabelsMismatch(Exception):
    """labels.json and the model disagree on the number of classes (a deployment error)."""


class Predictor:
    """Holds what a prediction needs for the life of the process."""

    def __init__(self, client: TFServingClient, labels: tuple[Label, ...], decode_pool: Executor,
                 *, max_pixels: int, low_confidence_threshold: float) -> None:
        self.client = client
        self.labels = labels
        self.decode_pool = decode_pool
        self.max_pixels = max_pixels
        self.low_confidence_threshold = low_confidence_threshold

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
        started = time.perf_counter()
        signature = await self.signature()
        decode = partial(image_to_tensor, image, height=signature.height, width=signature.width,
                         max_pixels=self.max_pixels)
        # Pillow releases the GIL while decoding and resizing: threads decode in parallel and the
        # event loop keeps serving other requests.
        with metrics.phase("decode"):
            tensor = await asyncio.get_running_loop().run_in_executor(self.decode_pool, decode)
        with metrics.phase("model"):
            output = await self.client.predict(signature, tensor)
        with metrics.phase("reply"):
            if output.values.size != len(self.labels):
                raise LabelsMismatch(f"The labels file lists {len(self.labels)} classes but the "
                                     f"model returned {output.values.size} values.")
            if not np.isfinite(output.values).all():
                raise ModelFailed("the model returned non-finite probabilities")
            answer = build_prediction(output.values.tolist(), self.labels,
                                      threshold=self.low_confidence_threshold,
                                      model=ModelInfo(name=output.model_name,
                                                      version=output.version),
                                      request_id=request_id)
        metrics.record_prediction(output.model_name, output.version, answer.code,
                                  answer.low_confidence)
        log.info("prediction %s (%.3f)", answer.code, answer.confidence, extra={
            "model_name": output.model_name, "model_version": output.version,
            "code": answer.code, "confidence": round(answer.confidence, 4),
            "low_confidence": answer.low_confidence,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3)})
        return answer
