"""Predictions: signature -> decode in the worker pool -> Predict -> ranked labels."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np

from app.core import memory, metrics
from app.decode_budget import BudgetExhausted, DecodeBudget
from app.diagnosis import build_prediction
from app.imaging import ImageRejected, decode_cost, image_to_tensor
from app.labels import Label
from app.model_card import load_card
from app.rollout import (
    CANARY,
    STABLE,
    RolloutFile,
    ShadowTasks,
    choose_label,
    compare,
    should_shadow,
    uniform,
)
from app.schemas import ModelInfo, PredictionResponse
from app.tfserving.client import ModelFailed, ModelOutput, ModelServerError, TFServingClient
from app.tfserving.signature import Signature

log = logging.getLogger(__name__)

_Inputs = TypeVar("_Inputs")
_Output = TypeVar("_Output")

# Decodes needing more than this give their memory back to the system as soon as they end.
TRIM_AFTER_BYTES = 64 * 1024 * 1024
# A version's model card is read again after this long (a card lands with its version).
CARD_TTL_SECONDS = 10.0


# Why one photo of a batch has no prediction: unusable, or its decode memory was not free in time.
PartRefused = ImageRejected | BudgetExhausted


class LabelsMismatch(Exception):
    """labels.json and the model disagree on the number of classes (a deployment error)."""


class PredictionService:
    """Holds what a prediction needs for the life of the process."""

    def __init__(self, client: TFServingClient, labels: tuple[Label, ...], decode_pool: Executor,
                 *, max_pixels: int, low_confidence_threshold: float,
                 decode_budget: DecodeBudget | None = None, min_image_side: int = 1,
                 min_pixel_spread: float = 0.0, decodes_per_batch: int = 2,
                 card_file: Path | None = None, rollout: RolloutFile | None = None,
                 shadow: ShadowTasks | None = None, draw: Callable[[], float] = uniform) -> None:
        self.client = client
        self.card_file = card_file
        self.rollout = rollout or RolloutFile(None)
        self.shadow = shadow or ShadowTasks(4, metrics.record_shadow_dropped)
        self._draw = draw
        self._demo: dict[int, tuple[float, bool | None]] = {}  # version -> (read at, card.demo)
        self.labels = labels
        self.decode_pool = decode_pool
        self.max_pixels = max_pixels
        self.low_confidence_threshold = low_confidence_threshold
        self.decode_budget = decode_budget
        self.min_image_side = min_image_side
        self.min_pixel_spread = min_pixel_spread
        self.decodes_per_batch = decodes_per_batch

    async def signature(self, label: str | None = None) -> Signature:
        """The served signature (of a version label's version), checked against the labels."""
        signature = await self.client.signature(label)
        if signature.num_classes is not None and signature.num_classes != len(self.labels):
            raise LabelsMismatch(
                f"The labels file lists {len(self.labels)} classes but model "
                f"{signature.model_name!r} version {signature.version} outputs "
                f"{signature.num_classes}.")
        return signature

    async def predict(self, image: bytes, request_id: str) -> PredictionResponse:
        """Classify one uploaded photo (raises ImageRejected or ModelServerError subclasses).
        With a rollout plan: answered by `stable`, or by `canary` for the plan's share (stable
        answers instead if canary fails), and shadowed to `canary` for the plan's share."""
        plan = self.rollout.plan()
        label = None if plan is None else choose_label(plan, self._draw())
        try:
            output, tensor = await self._predict_one(image, label)
        except ModelServerError:
            if label != CANARY:
                raise
            log.warning("canary failed; stable answers this request")
            label = STABLE
            output, tensor = await self._predict_one(image, label)
        if plan is not None and label == STABLE and should_shadow(plan, self._draw()):
            self.shadow.submit(partial(self._shadow, image, tensor, output))
        return self._answer(output.values, output, request_id, label)

    async def _predict_one(self, image: bytes, label: str | None
                           ) -> tuple[ModelOutput, np.ndarray]:
        signature = await self.signature(label)
        tensor = await self._decode(image, signature)

        async def call(signature: Signature, tensor: np.ndarray) -> ModelOutput:
            started = time.perf_counter()
            try:
                with metrics.phase("model"):
                    output = await self.client.predict(signature, tensor, label)
            except ModelServerError:
                metrics.record_version_call(label, None, ok=False, seconds=None)
                raise
            metrics.record_version_call(label, output.version, ok=True,
                                        seconds=time.perf_counter() - started)
            return output

        return await self._call_model(signature, tensor, call, partial(self._decode, image),
                                      label)

    async def _shadow(self, image: bytes, tensor: np.ndarray, stable: ModelOutput) -> None:
        """The same photo through `canary`, compared with stable's answer; never answered."""
        try:
            signature = await self.signature(CANARY)
            if tensor.shape[1:3] != (signature.height, signature.width):
                tensor = await self._decode(image, signature)
            canary = await self.client.predict(signature, tensor, CANARY)
        except (ModelServerError, LabelsMismatch, ImageRejected, BudgetExhausted) as error:
            metrics.record_shadow_error()
            log.warning("shadow call to canary failed: %s", error)
            return
        if canary.values.shape != stable.values.shape:
            metrics.record_shadow_error()
            log.warning("shadow: canary returned %s values, stable %s", canary.values.shape,
                        stable.values.shape)
            return
        comparison = compare(stable.values, canary.values)
        metrics.record_shadow(stable.version, canary.version, comparison.agreed,
                              comparison.max_abs_difference)

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
        # Batches are answered by stable when there are labels (a canary share is of single
        # predictions).
        label = None if self.rollout.plan() is None else STABLE
        signature = await self.signature(label)
        decoded = await self._decode_all(photos, signature)
        outputs, decoded = await self._call_model(
            signature, decoded, partial(self._predict_batch, label=label),
            lambda fresh: self._decode_all(photos, fresh), label)
        rows = [(row, output) for output in outputs for row in output.rows]
        answers = iter(self._answer(row, output, request_id, label) for row, output in rows)
        return [next(answers) if isinstance(outcome, np.ndarray) else outcome
                for outcome in decoded]

    async def _call_model(self, signature: Signature, inputs: _Inputs,
                          call: Callable[[Signature, _Inputs], Awaitable[_Output]],
                          decode: Callable[[Signature], Awaitable[_Inputs]],
                          label: str | None = None) -> tuple[_Output, _Inputs]:
        """call(signature, inputs), and the inputs it was answered for. A new version with other
        signature keys or input size (e.g. the article's model installed over the demo) refuses a
        request built for the old one: the client has dropped its cached signature, so ask again,
        and retry once if it did change (decoding again if the input size changed)."""
        try:
            return await call(signature, inputs), inputs
        except ModelFailed:
            fresh = await self.signature(label)
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
                             decoded: Sequence[np.ndarray | PartRefused],
                             label: str | None = None) -> list[ModelOutput]:
        """The Predict outputs for the usable photos: one call, or one per photo when the model
        takes exactly one image per call (concurrently); none when no photo is usable."""
        tensors = [outcome for outcome in decoded if isinstance(outcome, np.ndarray)]
        if not tensors:
            return []
        with metrics.phase("model"):
            if signature.batch == -1 or len(tensors) == 1:
                return [await self.client.predict(signature, np.concatenate(tensors), label)]
            return list(await asyncio.gather(
                *(self.client.predict(signature, tensor, label) for tensor in tensors)))

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

    def _demo_of(self, version: int) -> bool | None:
        """The model card's `demo` for a version (None without a card), re-read now and then."""
        if self.card_file is None:
            return None
        now = time.monotonic()
        cached = self._demo.get(version)
        if cached is None or now - cached[0] >= CARD_TTL_SECONDS:
            card = load_card(self.card_file, version)
            cached = (now, card.demo if card else None)
            self._demo[version] = cached
        return cached[1]

    def _answer(self, values: np.ndarray, output: ModelOutput, request_id: str,
                label: str | None = None) -> PredictionResponse:
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
                                                      version=output.version, label=label,
                                                      demo=self._demo_of(output.version)),
                                      request_id=request_id)
        metrics.record_prediction(output.model_name, output.version, answer.code,
                                  answer.low_confidence, answer.confidence)
        log.info("prediction %s (%.3f)", answer.code, answer.confidence, extra={
            "model_name": output.model_name, "model_version": output.version,
            "model_label": label,
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
    @functools.wraps(decode)  # inspect.unwrap(run) is `decode`: what the pool runs, named
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
