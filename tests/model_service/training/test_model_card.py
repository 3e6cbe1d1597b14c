"""Model cards and the get-model catalogue, without TensorFlow: card checks, one card per
version in model.json, the catalogue's facts, get-model's defaults and its refusals."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from app.model_card import load_card
from tests.support.paths import MODEL_REPOSITORY, REPO_ROOT
from training.card import check_card, demo_card, minimal_card, read_cards, write_card
from training.get_model import Entry, GetModelError, default_repository, load_catalogue, verify
from training.repository import PublishError

ARTICLE = load_catalogue()["article"]
REPORT = {"train_images": 20, "validation_images": 5, "epochs": 1, "seed": 1,
          "parameters": 100, "validation_accuracy": 0.4}


def test_cards_are_kept_per_version(tmp_path):
    write_card(tmp_path, 1, demo_card(REPORT))
    source = tmp_path / "m.h5"
    source.write_bytes(b"weights")
    write_card(tmp_path, 2, minimal_card(source))
    cards = read_cards(tmp_path)
    assert list(cards) == ["1", "2"]
    assert cards["1"]["demo"] is True and cards["2"]["demo"] is False
    assert cards["2"]["source"] == {"file": "m.h5", "size": 7,
                                    "sha256": hashlib.sha256(b"weights").hexdigest()}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


MALFORMED = [
    ({"demo": "no"}, "demo: Input should be a valid boolean"),
    ({"demo": 0}, "demo: Input should be a valid boolean"),
    ({"limitations": "none"}, "limitations: Input should be a valid list"),
    ({"limitations": [1]}, "limitations.0: Input should be a valid string"),
    ({"metrics": [{"name": "accuracy", "value": True, "data": "d", "source": "s",
                   "quote": None}]}, "metrics.0.value: Input should be a valid number"),
    ({"licence": None}, "licence: Input should be a valid string"),
    ({"intended_use": None}, "intended_use: Input should be a valid string"),
    ({"source": {"nested": {"a": 1}}}, "source.nested"),
]


@pytest.mark.parametrize(("change", "message"), MALFORMED)
def test_a_malformed_card_is_refused(change, message):
    with pytest.raises(PublishError, match=re.escape(message)):
        check_card({**demo_card(REPORT), **change})


def test_a_card_without_a_field_is_refused():
    card = demo_card(REPORT)
    del card["intended_use"]
    with pytest.raises(PublishError, match="intended_use: Field required"):
        check_card(card)


GOOD = [demo_card(REPORT), minimal_card(Path("m.h5")),
        Entry.from_catalogue("article", ARTICLE).card,
        {**demo_card(REPORT), "attribution": "someone", "future_field": [1, 2]},
        *read_cards(MODEL_REPOSITORY / "cassava").values(),
        *read_cards(REPO_ROOT / "deploy" / "kubernetes" / "base").values()]


@pytest.mark.parametrize("card", [*GOOD, *({**demo_card(REPORT), **change}
                                           for change, _ in MALFORMED)])
def test_the_tools_publish_exactly_the_cards_the_api_reads(card, tmp_path):
    """One schema: check_card (every publishing tool) accepts a card exactly when the API's
    load_card gives it to clients."""
    try:
        check_card(card)
        published = True
    except PublishError:
        published = False
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"versions": {"1": card}}))
    assert (load_card(path, 1) is not None) is published
    assert published is (card in GOOD)


def test_an_unreadable_model_json_is_an_error(tmp_path):
    (tmp_path / "model.json").write_text('{"1": {}}')
    with pytest.raises(PublishError, match='"versions"'):
        read_cards(tmp_path)


def test_the_bundled_demo_has_its_card():
    cards = read_cards(MODEL_REPOSITORY / "cassava")
    assert list(cards) == ["1"]
    card = check_card(cards["1"])
    assert card["demo"] is True
    assert "synthetic" in card["training_data"]
    assert [m["value"] for m in card["metrics"]] == [0.984, 0.982]


def test_defaults_are_run_locals_model_base_path_and_name():
    """MODEL_BASE_PATH / MODEL_NAME as run-local reads them (relative to the current directory,
    as run-local resolves it), else the bundled repository and `cassava`."""
    assert default_repository({"MODEL_BASE_PATH": "models", "MODEL_NAME": "mine"}) == (
        Path("models"), "mine")
    assert default_repository({}) == (REPO_ROOT / "model.service" / "models", "cassava")


def test_the_catalogue_holds_the_issues_facts():
    assert ARTICLE["url"] == ("https://raw.githubusercontent.com/PatrickKalkman/leave-deploy/"
                              "13f111d5bc4800c7f7fe78a54dd8f36b682315f8/model.service/best-model.h5")
    assert (ARTICLE["size"], ARTICLE["sha256"]) == (
        4_009_608, "d2d7b011ffa63536937bfec055b7afd7d2b49e5a63c5f3f07065aadcccebbf1e")
    assert (ARTICLE["licence"], ARTICLE["attribution"]) == (
        "MIT", "Copyright (c) 2021 Patrick Kalkman")
    entry = Entry.from_catalogue("article", ARTICLE)
    assert check_card(entry.card)["demo"] is False


def test_verify_names_the_likeliest_reason():
    entry = Entry.from_catalogue("article", ARTICLE)
    good = hashlib.sha256(b"x").hexdigest()
    with pytest.raises(GetModelError, match="is an HTML page"):
        verify("f", entry, 60, good, b"  <!DOCTYPE html><html>")
    with pytest.raises(GetModelError, match="truncated: 10 of 4,009,608 bytes"):
        verify("f", entry, 10, good, b"\x89HDF\r\n\x1a\n")
    with pytest.raises(GetModelError, match=f"has SHA-256 {good}"):
        verify("f", entry, entry.size, good, b"\x89HDF\r\n\x1a\n")
    verify("f", entry, entry.size, entry.sha256, b"\x89HDF\r\n\x1a\n")




def test_installed_versions_are_never_committed():
    """git ignores every version directory but the demo's: downloaded weights stay out."""
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT,
                              check=False).returncode == 0

    assert ignored("model.service/models/cassava/2/variables/variables.index")
    assert ignored("model.service/models/article/1/saved_model.pb")
    assert not ignored("model.service/models/cassava/1/saved_model.pb")
    assert not ignored("model.service/models/cassava/model.json")
