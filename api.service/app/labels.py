"""The class labels of the model repository's labels.json, in class-index order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class LabelsError(ValueError):
    """labels.json is missing or malformed: a deployment error, reported at startup."""


@dataclass(frozen=True)
class Label:
    code: str  # short, stable: "CMD"
    name: str  # display name: "Cassava Mosaic Disease (CMD)"


def parse_labels(text: str, source: str = "labels.json") -> tuple[Label, ...]:
    """A JSON list of {"code", "name"} objects (extra fields allowed) -> labels by class index."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise LabelsError(f"{source}: not JSON ({error})") from None
    return check_labels(raw, source)


def check_labels(raw: object, source: str = "labels.json") -> tuple[Label, ...]:
    """The one rule for a labels file, decoded: the API starts with it, and the publishing tools
    (scripts/convert-model, get-model, train-demo-model) write only what it accepts."""
    if not isinstance(raw, list) or not raw:
        raise LabelsError(f"{source}: expected a non-empty JSON list of labels")
    labels = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not all(
                isinstance(item.get(key), str) and item[key].strip() for key in ("code", "name")):
            raise LabelsError(f"{source}: label {index} needs non-empty string 'code' and 'name'")
        labels.append(Label(code=item["code"], name=item["name"]))
    codes = [label.code for label in labels]
    if len(set(codes)) != len(codes):
        raise LabelsError(f"{source}: duplicate label codes in {codes}")
    return tuple(labels)


def load_labels(path: Path) -> tuple[Label, ...]:
    """Read and check LABELS_PATH."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise LabelsError(f"cannot read labels file {path}: {error.strerror}") from None
    return parse_labels(text, str(path))
