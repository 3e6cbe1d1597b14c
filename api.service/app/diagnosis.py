"""Model output row + labels -> the response body. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from app.labels import Label
from app.probabilities import normalised_entropy
from app.schemas import ClassProbability, ModelInfo, PredictionResponse


def rank(values: Sequence[float], labels: Sequence[Label]) -> list[ClassProbability]:
    """Every class with its probability, highest first (ties keep class order)."""
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} outputs for {len(labels)} labels")
    order = sorted(range(len(labels)), key=lambda index: -float(values[index]))
    return [ClassProbability(code=labels[i].code, name=labels[i].name,
                             probability=min(max(float(values[i]), 0.0), 1.0)) for i in order]


def build_prediction(values: Sequence[float], labels: Sequence[Label], *, threshold: float,
                     model: ModelInfo, request_id: str) -> PredictionResponse:
    """The /predict/image body for one softmax row."""
    ranked = rank(values, labels)
    top = ranked[0]
    return PredictionResponse(prediction=top.name, code=top.code, confidence=top.probability,
                              low_confidence=top.probability < threshold,
                              entropy=normalised_entropy(values), probabilities=ranked,
                              model=model, request_id=request_id)
