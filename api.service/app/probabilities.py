"""What a softmax row says beyond its top class. Pure, standard library only: the survey tool
runs this same file for its offline answers (client/src/cassava_survey/probabilities.py is a
link to it), so both report the same entropy."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
