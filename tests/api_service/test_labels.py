"""labels.json parsing: the repository's format, and clear errors for broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.labels import Label, LabelsError, load_labels, parse_labels
from tests.support.paths import SEED_LABELS


def test_seed_labels_in_class_order() -> None:
    labels = load_labels(SEED_LABELS)
    assert [label.code for label in labels] == ["CBB", "CBSD", "CGM", "CMD", "Healthy"]
    assert labels[3] == Label("CMD", "Cassava Mosaic Disease (CMD)")


def test_extra_fields_are_allowed() -> None:
    assert parse_labels('[{"code": "A", "name": "Alpha", "colour": "red"}]') == (
        Label("A", "Alpha"),)


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "not JSON"),
    ("{}", "non-empty JSON list"),
    ("[]", "non-empty JSON list"),
    ('[{"code": "A"}]', "label 0 needs"),
    ('[{"code": "A", "name": ""}]', "label 0 needs"),
    ('["A"]', "label 0 needs"),
    ('[{"code": "A", "name": "x"}, {"code": "A", "name": "y"}]', "duplicate"),
])
def test_broken_labels_are_explained(text: str, message: str) -> None:
    with pytest.raises(LabelsError, match=message):
        parse_labels(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="cannot read labels file"):
        load_labels(tmp_path / "labels.json")
