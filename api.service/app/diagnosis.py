"""Model output row + labels -> the response body. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.labels import Label
from app.schemas import ClassProbability, ModelInfo, PredictionResponse


def rank(values: Sequence[float], labels: Sequence[Label]) -> list[ClassProbability]:
    """Every class with its probability, highest first (ties keep class order)."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} outputs for {len(labels)} labels")
    order = sorted(range(len(labels)), key=lambda index: -float(values[index]))
    return [ClassProbability(code=labels[i].code, name=labels[i].name,
                             probability=min(max(float(values[i]), 0.0), 1.0)) for i in order]


def normalised_entropy(values: Sequence[float]) -> float:
    """Shannon entropy of the distribution divided by its maximum, log(classes): 0 when one class
    has all the probability, 1 when every class is equally likely. The row is renormalised first
    (a softmax sums to 1 only up to rounding); a single class is always 0."""
    clipped = [min(max(float(value), 0.0), 1.0) for value in values]
    total = sum(clipped)
    if len(clipped) < 2 or total <= 0.0:
        return 0.0
    entropy = -sum(p / total * math.log(p / total) for p in clipped if p > 0.0)
    return min(max(entropy / math.log(len(clipped)), 0.0), 1.0)


def build_prediction(values: Sequence[float], labels: Sequence[Label], *, threshold: float,
                     model: ModelInfo, request_id: str) -> PredictionResponse:
    """The /predict/image body for one softmax row."""
    ranked = rank(values, labels)
    top = ranked[0]
    return PredictionResponse(prediction=top.name, code=top.code, confidence=top.probability,
                              low_confidence=top.probability < threshold,
                              entropy=normalised_entropy(values), probabilities=ranked,
                              model=model, request_id=request_id)
