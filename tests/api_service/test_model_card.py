"""app.model_card: the card of the served version from model.json, or None when there is none."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app.model_card import card_path, load_card
from tests.support.paths import MODEL_REPOSITORY

DEMO_CARDS = MODEL_REPOSITORY / "cassava" / "model.json"


def test_model_json_sits_beside_labels_json():
    assert card_path(Path("/models/cassava/labels.json")) == Path("/models/cassava/model.json")


def test_the_bundled_demo_card_loads():
    card = load_card(DEMO_CARDS, 1)
    assert card is not None and card.demo is True
    assert card.metrics[0].name == "accuracy"


@pytest.mark.parametrize(("content", "version", "logged"), [
    (None, 1, "does not exist"),
    ("{not json", 1, "unreadable"),
    ('{"versions": {"1": {}}}', 2, "no card for version 2"),
    ('["versions"]', 1, "no card for version 1"),
    ('{"versions": {"1": {"name": "x"}}}', 1, "malformed"),
])
def test_no_usable_card_is_none_and_logged(tmp_path, caplog, content, version, logged):
    path = tmp_path / "model.json"
    if content is not None:
        path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="app.model_card"):
        assert load_card(path, version) is None
    assert logged in caplog.text


def test_the_card_of_the_asked_version_is_returned(tmp_path):
    cards = json.loads(DEMO_CARDS.read_text())["versions"]
    real = {**cards["1"], "demo": False, "name": "real"}
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"versions": {"1": cards["1"], "2": real}}))
    assert load_card(path, 1).demo is True  # type: ignore[union-attr]
    assert load_card(path, 2).name == "real"  # type: ignore[union-attr]
