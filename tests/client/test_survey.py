"""Batch planning (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cassava_survey.photos import Photo
from cassava_survey.survey import plan_batches


def photos(*sizes: int) -> list[Photo]:
    return [Photo(Path(f"{i}.jpg"), size, 0) for i, size in enumerate(sizes)]


def sizes(batches: list[list[Photo]]) -> list[list[int]]:
    return [[photo.size for photo in batch] for batch in batches]


def test_batches_respect_count_and_bytes_in_order() -> None:
    assert sizes(plan_batches(photos(1, 1, 1, 1, 1), max_files=2, max_bytes=100)) == [
        [1, 1], [1, 1], [1]]
    assert sizes(plan_batches(photos(40, 40, 40, 10), max_files=8, max_bytes=100)) == [
        [40, 40], [40, 10]]


def test_a_photo_over_the_byte_budget_travels_alone() -> None:
    assert sizes(plan_batches(photos(10, 500, 10), max_files=8, max_bytes=100)) == [
        [10], [500], [10]]


def test_nothing_to_send() -> None:
    assert plan_batches([], max_files=8, max_bytes=100) == []
    with pytest.raises(ValueError):
        plan_batches(photos(1), max_files=0, max_bytes=100)
