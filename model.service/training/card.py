"""Model cards: what a served model is, what it was trained on, how good it is said to be, and
whether it is only a demo.

`<model_dir>/model.json` sits beside labels.json and holds one card per version:

    {"versions": {"1": {...card...}, "2": {...card...}}}

Per version, because one model directory serves different versions over time (a newer one lands;
an older one comes back when the newer directory is removed or a version policy pins it): the API
shows the card of the version being served, so a real model's card never speaks for the demo, nor
the demo's for a real model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.model_card import ModelCard
from training.repository import PublishError, write_json

CARD_FILE = "model.json"


def check_card(card: Any, where: str = "model card") -> dict:
    """The card, if the API's schema (app.model_card.ModelCard) accepts it; fields it does not
    know are kept in the file (and ignored by the API)."""
    if not isinstance(card, dict):
        raise PublishError(f"{where} must be a JSON object")
    try:
        ModelCard.model_validate(card)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(part) for part in problem['loc'])}: "
                             f"{problem['msg']}" for problem in error.errors())
        raise PublishError(f"{where}: {problems}") from None
    return card


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def minimal_card(source: Path) -> dict:
    """What scripts/convert-model knows about a model it was given without a card."""
    origin: dict[str, Any] = {"file": source.name}
    if source.is_file():
        origin.update(size=source.stat().st_size, sha256=sha256_of(source))
    return {
        "name": source.stem if source.is_file() else source.name,
        "description": f"Converted by scripts/convert-model from {source.name}; "
                       "no model card was supplied.",
        "demo": False,
        "training_data": "Unknown: not described by whoever converted it.",
        "intended_use": "Unknown: not described by whoever converted it.",
        "limitations": ["No model card was supplied: its training data, accuracy and "
                        "limitations are unknown."],
        "licence": "Unknown",
        "attribution": None,
        "source": origin,
        "metrics": [],
    }


def demo_card(report: dict) -> dict:
    """The card of a demo model trained by scripts/train-demo-model (its training report)."""
    return {
        "name": "Cassava demo CNN (synthetic leaves)",
        "description": "A small CNN that lets the stack run end to end out of the box, with the "
                       "article's contract (1x150x150x3 RGB in [0, 1] -> softmax over CBB, CBSD, "
                       "CGM, CMD, Healthy). It is a demonstration, not a diagnostic tool.",
        "demo": True,
        "training_data": f"{report['train_images']} synthetic cassava-leaf images drawn by "
                         "model.service/leafsynth (no real photos), validated on "
                         f"{report['validation_images']} more.",
        "intended_use": "Demonstrating and testing the stack. Do not act on its answers for a "
                        "real plant.",
        "limitations": [
            "Trained only on synthetic images: its answers on real photos mean nothing.",
            "Its accuracy on synthetic leaves says nothing about real fields.",
        ],
        "licence": "Same terms as this repository (trained here from scratch; no third-party "
                   "weights or data).",
        "attribution": None,
        "source": {"trained_by": "scripts/train-demo-model", "epochs": report["epochs"],
                   "seed": report["seed"], "parameters": report["parameters"]},
        "metrics": [{
            "name": "accuracy",
            "value": report["validation_accuracy"],
            "data": f"{report['validation_images']} synthetic validation images (leafsynth)",
            "source": "measured by scripts/train-demo-model",
            "quote": None,
        }],
    }


def read_cards(model_dir: Path) -> dict[str, dict]:
    """The cards of model_dir by version number (as a string); {} when there is no model.json."""
    path = model_dir / CARD_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise PublishError(f'{path} must be a JSON object {{"versions": {{"<n>": card}}}}')
    return data["versions"]


def write_card(model_dir: Path, version: int, card: dict) -> Path:
    """Record `card` as the card of `version` in model_dir/model.json (atomically; the other
    versions' cards stay)."""
    cards = read_cards(model_dir)
    cards[str(version)] = check_card(card)
    ordered = dict(sorted(cards.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 0))
    return write_json(model_dir / CARD_FILE, {"versions": ordered})
