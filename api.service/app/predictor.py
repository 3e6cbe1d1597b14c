"""One prediction: signature -> decode in the worker pool -> Predict -> ranked labels."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial

import numpy as np

from app.imaging import image_to_tensor
from app.labels import Label
from app.prediction import build_prediction
from app.schemas import ModelInfo, PredictionResponse
from app.tfserving.client import ModelFailed, TFServingClient
from app.tfserving.signature import Signature


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

    async def _decode(self, image: bytes, signature: Signature) -> np.ndarray:
        decode = partial(image_to_tensor, image, height=signature.height, width=signature.width,
                         max_pixels=self.max_pixels)
        # Pillow releases the GIL while decoding and resizing: threads decode in parallel and the
        # event loop keeps serving other requests.
        return await asyncio.get_running_loop().run_in_executor(self.decode_pool, decode)

    async def predict(self, image: bytes, request_id: str) -> PredictionResponse:
        """Classify one uploaded photo (raises ImageRejected or ModelServerError subclasses)."""
        signature = await self.signature()
        tensor = await self._decode(image, signature)
        try:
            output = await self.client.predict(signature, tensor)
        except ModelFailed:
            # A new version with other signature keys or input size (e.g. the article's model
            # installed over the demo) refuses a request built for the old one: the client has
            # dropped its cached signature, so ask again, and retry once if it did change.
            fresh = await self.signature()
            if fresh == signature:
                raise
            if (fresh.height, fresh.width) != (signature.height, signature.width):
                tensor = await self._decode(image, fresh)
            output = await self.client.predict(fresh, tensor)
        if output.values.size != len(self.labels):
            raise LabelsMismatch(f"The labels file lists {len(self.labels)} classes but the "
                                 f"model returned {output.values.size} values.")
        if not np.isfinite(output.values).all():
            raise ModelFailed("the model returned non-finite probabilities")
        return build_prediction(output.values.tolist(), self.labels,
                                threshold=self.low_confidence_threshold,
                                model=ModelInfo(name=output.model_name, version=output.version),
                                request_id=request_id)
