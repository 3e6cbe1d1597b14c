"""Predictions: signature -> decode in the worker pool -> Predict -> ranked labels."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from functools import partial
from typing import TypeVar

import numpy as np

from app.core import memory, metrics
from app.decode_budget import BudgetExhausted, DecodeBudget
from app.diagnosis import build_prediction
from app.imaging import ImageRejected, decode_cost, image_to_tensor
from app.labels import Label
from app.schemas import ModelInfo, PredictionResponse
from app.tfserving.client import ModelFailed, ModelOutput, TFServingClient
from app.tfserving.signature import Signature

log = logging.getLogger(__name__)

_Inputs = TypeVar("_Inputs")
_Output = TypeVar("_Output")

# Decodes needing more than this give their memory back to the system as soon as they end.
TRIM_AFTER_BYTES = 64 * 1024 * 1024


# Why one photo of a batch has no prediction: unusable, or its decode memory was not free in time.
PartRefused = ImageRejected | BudgetExhausted


class LabelsMismatch(Exception):
    """labels.json and the model disagree on the number of classes (a deployment error)."""


class PredictionService:
    """Holds what a prediction needs for the life of the process."""

    def __init__(self, client: TFServingClient, labels: tuple[Label, ...], decode_pool: Executor,
                 *, max_pixels: int, low_confidence_threshold: float,
                 decode_budget: DecodeBudget | None = None, min_image_side: int = 1,
                 min_pixel_spread: float = 0.0, decodes_per_batch: int = 2) -> None:
        self.client = client
        self.labels = labels
        self.decode_pool = decode_pool
        self.max_pixels = max_pixels
        self.low_confidence_threshold = low_confidence_threshold
        self.decode_budget = decode_budget
        self.min_image_side = min_image_side
        self.min_pixel_spread = min_pixel_spread
        self.decodes_per_batch = decodes_per_batch

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
        tensor = await self._decode(image, signature)

        async def call(signature: Signature, tensor: np.ndarray) -> ModelOutput:
            with metrics.phase("model"):
                return await self.client.predict(signature, tensor)

        output, _ = await self._call_model(signature, tensor, call,
                                           partial(self._decode, image))
        return self._answer(output.values, output, request_id)

    async def predict_many(self, images: Sequence[Callable[[], bytes]], request_id: str
                           ) -> list[PredictionResponse | PartRefused]:
        """Classify several photos (each read by its callable in the worker pool) with ONE Predict
        call; a photo that cannot be used (ImageRejected) or did not get its decode memory in time
        (BudgetExhausted) gets that exception in its place. Model server failures still raise,
        for the whole batch."""
        loop = asyncio.get_running_loop()
        # Read once (in the pool: a spooled upload may be on disk), kept for a retry's decode.
        photos = await asyncio.gather(*(loop.run_in_executor(self.decode_pool, read)
                                        for read in images))
        signature = await self.signature()
        decoded = await self._decode_all(photos, signature)
        outputs, decoded = await self._call_model(
            signature, decoded, self._predict_batch,
            lambda fresh: self._decode_all(photos, fresh))
        rows = [(row, output) for output in outputs for row in output.rows]
        answers = iter(self._answer(row, output, request_id) for row, output in rows)
        return [next(answers) if isinstance(outcome, np.ndarray) else outcome
                for outcome in decoded]  # type: ignore[misc]

    async def _call_model(self, signature: Signature, inputs: _Inputs,
                          call: Callable[[Signature, _Inputs], Awaitable[_Output]],
                          decode: Callable[[Signature], Awaitable[_Inputs]]
                          ) -> tuple[_Output, _Inputs]:
        """call(signature, inputs), and the inputs it was answered for. A new version with other
        signature keys or input size (e.g. the article's model installed over the demo) refuses a
        request built for the old one: the client has dropped its cached signature, so ask again,
        and retry once if it did change (decoding again if the input size changed)."""
        try:
            return await call(signature, inputs), inputs
        except ModelFailed:
            fresh = await self.signature()
            if fresh == signature:
                raise
            if (fresh.height, fresh.width) != (signature.height, signature.width):
                inputs = await decode(fresh)
            return await call(fresh, inputs), inputs

    async def _decode_all(self, photos: Sequence[bytes], signature: Signature
                          ) -> list[np.ndarray | PartRefused]:
        """Each photo's tensor, or the exception saying why it cannot be used. Every part takes
        its own share of the decode budget, in request order, like single uploads do."""
        # At most `decodes_per_batch` (the pool's threads) of one batch's parts in the budget's
        # queue at once: no fewer decodes run side by side, but a batch of 16 giants cannot queue
        # ahead of every other client's photo (served in turn, issue 20).
        # All parts give up at the same time, as one photo would: a batch's answer is not
        # delayed past DECODE_WAIT_SECONDS by its own parts.
        turns = asyncio.Semaphore(self.decodes_per_batch)
        deadline = self.decode_budget.deadline() if self.decode_budget else None

        async def decode(photo: bytes) -> np.ndarray:
            async with turns:
                return await self._decode(photo, signature, deadline)

        decoded = await asyncio.gather(*(decode(photo) for photo in photos),
                                       return_exceptions=True)
        for outcome in decoded:  # a bug or a cancellation is not a bad photo
            if isinstance(outcome, BaseException) and not isinstance(outcome, PartRefused):
                raise outcome
        return decoded  # type: ignore[return-value]

    async def _predict_batch(self, signature: Signature,
                             decoded: Sequence[np.ndarray | PartRefused]) -> list[ModelOutput]:
        """The Predict outputs for the usable photos: one call, or one per photo when the model
        takes exactly one image per call (concurrently); none when no photo is usable."""
        tensors = [outcome for outcome in decoded if isinstance(outcome, np.ndarray)]
        if not tensors:
            return []
        with metrics.phase("model"):
            if signature.batch == -1 or len(tensors) == 1:
                return [await self.client.predict(signature, np.concatenate(tensors))]
            return list(await asyncio.gather(
                *(self.client.predict(signature, tensor) for tensor in tensors)))

    async def _decode(self, image: bytes, signature: Signature,
                      deadline: float | None = None) -> np.ndarray:
        """The photo -> the model's (1, H, W, 3) input, in the worker pool, within the decode
        memory budget (waiting for it until `deadline`, default DECODE_WAIT_SECONDS from now)."""
        loop = asyncio.get_running_loop()
        budget = self.decode_budget
        decode = partial(image_to_tensor, image, height=signature.height, width=signature.width,
                         max_pixels=self.max_pixels, min_short_side=self.min_image_side,
                         min_spread=self.min_pixel_spread,
                         max_decode_bytes=budget.capacity if budget else None)
        # Pillow releases the GIL while decoding and resizing: threads decode in parallel and the
        # event loop keeps serving other requests.
        with metrics.phase("decode"):
            if budget is None:
                return await loop.run_in_executor(self.decode_pool, _detached(decode, trim=False))
            # The header alone (microseconds) says how much memory the decode will take.
            cost = decode_cost(image, height=signature.height, width=signature.width,
                               max_pixels=self.max_pixels)
            return await budget.run(self.decode_pool, cost,
                                    _detached(decode, trim=cost > TRIM_AFTER_BYTES), deadline)

    def _answer(self, values: np.ndarray, output: ModelOutput, request_id: str
                ) -> PredictionResponse:
        """One output row -> the response body, after checking it fits the labels; counted in the
        metrics (diagnosis mix, low confidence) and logged (class and confidence only)."""
        with metrics.phase("reply"):
            if values.size != len(self.labels):
                raise LabelsMismatch(f"The labels file lists {len(self.labels)} classes but the "
                                     f"model returned {values.size} values.")
            if not np.isfinite(values).all():
                raise ModelFailed("the model returned non-finite probabilities")
            answer = build_prediction(values.tolist(), self.labels,
                                      threshold=self.low_confidence_threshold,
                                      model=ModelInfo(name=output.model_name,
                                                      version=output.version),
                                      request_id=request_id)
        metrics.record_prediction(output.model_name, output.version, answer.code,
                                  answer.low_confidence)
        log.info("prediction %s (%.3f)", answer.code, answer.confidence, extra={
            "model_name": output.model_name, "model_version": output.version,
            "code": answer.code, "confidence": round(answer.confidence, 4),
            "low_confidence": answer.low_confidence})
        return answer


def _detached(decode: Callable[[], np.ndarray], *, trim: bool) -> Callable[[], np.ndarray]:
    """decode() whose ImageRejected carries no traceback, and (with `trim`) malloc_trim after it
    in the same thread (its arena is the one that grew).

    A traceback keeps every frame it passed through alive, and image_to_tensor's frames hold the
    full-size decoded image: a batch keeps its parts' exceptions until the reply is sent, so 16
    blank 49 MP PNGs kept ~3 GiB resident, and the frame <-> traceback cycles kept it after the
    reply until the garbage collector's rare full pass (issue 20)."""
    def run() -> np.ndarray:
        try:
            return decode()
        except ImageRejected as rejected:
            rejected.__traceback__ = rejected.__cause__ = rejected.__context__ = None
            raise rejected from None
        finally:
            if trim:
                memory.trim()
    return run
