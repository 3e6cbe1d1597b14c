"""Softmax row + labels -> response body."""

from __future__ import annotations

import math

import pytest

from app.diagnosis import build_prediction, normalised_entropy, rank
from app.labels import Label
from app.schemas import ModelInfo

LABELS = tuple(Label(code, f"name of {code}") for code in ("CBB", "CBSD", "CGM", "CMD", "Healthy"))


def test_every_class_sorted_descending() -> None:
    ranked = rank([0.1, 0.05, 0.2, 0.6, 0.05], LABELS)
    assert [p.code for p in ranked] == ["CMD", "CGM", "CBB", "CBSD", "Healthy"]  # ties: class order
    assert [p.probability for p in ranked] == [0.6, 0.2, 0.1, 0.05, 0.05]


def test_body_fields() -> None:
    body = build_prediction([0.1, 0.05, 0.2, 0.6, 0.05], LABELS, threshold=0.5,
                            model=ModelInfo(name="cassava", version=2, label="canary", demo=False),
                            request_id="r1")
    assert body.model_dump() == {
        "prediction": "name of CMD", "code": "CMD", "confidence": 0.6, "low_confidence": False,
        # -sum(p ln p) / ln 5, written out here rather than asked of the code under test.
        "entropy": pytest.approx(-(0.1 * math.log(0.1) + 2 * 0.05 * math.log(0.05)
                                   + 0.2 * math.log(0.2) + 0.6 * math.log(0.6)) / math.log(5)),
        "probabilities": [{"code": code, "name": f"name of {code}", "probability": probability}
                          for code, probability in [("CMD", 0.6), ("CGM", 0.2), ("CBB", 0.1),
                                                    ("CBSD", 0.05), ("Healthy", 0.05)]],
        "model": {"name": "cassava", "version": 2, "label": "canary", "demo": False},
        "request_id": "r1"}


@pytest.mark.parametrize(("top", "threshold", "low"), [(0.49, 0.5, True), (0.5, 0.5, False)])
def test_low_confidence_threshold(top: float, threshold: float, low: bool) -> None:
    rest = (1 - top) / 4
    body = build_prediction([top, rest, rest, rest, rest], LABELS, threshold=threshold,
                            model=ModelInfo(name="m", version=1), request_id="r")
    assert body.low_confidence is low


def test_rounding_past_one_is_clamped() -> None:
    assert rank([1.0000001, 0, 0, 0, 0], LABELS)[0].probability == 1.0


def test_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="4 outputs for 5 labels"):
        rank([0.25] * 4, LABELS)


@pytest.mark.parametrize(("row", "expected"), [
    ([1.0, 0.0, 0.0, 0.0, 0.0], 0.0),          # certain
    ([0.2] * 5, 1.0),                           # uniform: the maximum
    ([0.5, 0.5, 0.0, 0.0, 0.0], math.log(2) / math.log(5)),
    ([0.1, 0.05, 0.2, 0.6, 0.05], 0.7196),      # -sum(p ln p) / ln 5
    ([0.4000001, 0.4, 0.2, 0, 0], 0.6555),      # rounding past a sum of 1 is renormalised
    ([1.0], 0.0),                               # one class: nothing to be unsure about
])
def test_normalised_entropy(row: list[float], expected: float) -> None:
    assert normalised_entropy(row) == pytest.approx(expected, abs=1e-4)


def test_entropy_separates_a_confident_answer_from_a_spread_one() -> None:
    sharp = build_prediction([0.9, 0.025, 0.025, 0.025, 0.025], LABELS, threshold=0.5,
                             model=ModelInfo(name="m", version=1), request_id="r")
    flat = build_prediction([0.3, 0.2, 0.2, 0.15, 0.15], LABELS, threshold=0.5,
                            model=ModelInfo(name="m", version=1), request_id="r")
    assert 0.0 < sharp.entropy < 0.3 < 0.9 < flat.entropy < 1.0
