"""The model card of the served version: <model dir>/model.json beside labels.json.

The file holds one card per version ({"versions": {"1": card, ...}}; written by
scripts/convert-model, scripts/train-demo-model and scripts/get-model, which check each card with
this module's ModelCard: one schema for the tools and the API). It is read on each request, so a
version that lands while the API runs is described without a restart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

log = logging.getLogger(__name__)


class Metric(BaseModel):
    """A figure about the model, with where it comes from."""

    # strict: JSON types as written ("demo": 1 or "value": true is a mistake in a card, not a
    # bool or a number to coerce); fields this schema does not know are ignored.
    model_config = ConfigDict(strict=True)

    name: str = Field(examples=["accuracy"])
    value: float = Field(examples=[0.8935])
    data: str = Field(description="what it was measured on")
    source: str = Field(description="who measured it, and where it is published")
    quote: str | None = Field(None, description="the source's own words, when quoted")


class OnDeviceEntry(BaseModel):
    """The version's on-device (TensorFlow Lite) artifact, as its publisher recorded it
    (model.service/training/on_device.py; docs/mobile.md)."""

    model_config = ConfigDict(strict=True)

    format: Literal["tflite"]
    file: str = Field(examples=["assets.extra/model.tflite"],
                      description="path inside the version directory")
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    bytes: int = Field(ge=1)
    quantization: Literal["float16", "dynamic_range", "float32"]
    fidelity: dict[str, str | int | float] | None = Field(
        None, description="the publish-time check against the SavedModel")


class ModelCard(BaseModel):
    """What the model is, what it was trained on, what it is for, and whether it is a demo."""

    model_config = ConfigDict(strict=True)

    name: str = Field(examples=["Cassava demo CNN (synthetic leaves)"])
    description: str
    demo: bool = Field(description="true: a demonstration model; do not act on its answers")
    training_data: str
    intended_use: str
    limitations: list[str]
    licence: str = Field(examples=["MIT"])
    attribution: str | None = Field(None, examples=["Copyright (c) 2021 Patrick Kalkman"])
    source: dict[str, str | int | float | None] | None = Field(
        None, description="where the weights come from (URL, commit, SHA-256, ...)")
    metrics: list[Metric]
    on_device: OnDeviceEntry | None = Field(
        None, description="the on-device artifact; null when the version has none")

    @field_validator("on_device", mode="wrap")
    @classmethod
    def _unusable_entry_is_none(cls, value: Any, handler: ValidatorFunctionWrapHandler
                                ) -> OnDeviceEntry | None:
        """A malformed on_device entry costs the artifact (logged), not the whole card."""
        try:
            entry: OnDeviceEntry | None = handler(value)
            return entry
        except ValidationError as error:
            log.error("model card: unusable on_device entry, no on-device model: %s", error)
            return None


def card_path(labels_path: Path) -> Path:
    """model.json lives beside labels.json."""
    return labels_path.with_name("model.json")


def load_card(path: Path, version: int) -> ModelCard | None:
    """The card of `version` in `path`, or None (logged) when there is none or it is unusable:
    a missing card is a deployment gap to report, never an error for the client."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        card = data["versions"][str(version)]
    except FileNotFoundError:
        log.warning("no model card: %s does not exist", path)
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.error("model card %s unreadable: %s", path, error)
        return None
    except (KeyError, TypeError):
        log.warning("model card %s has no card for version %d", path, version)
        return None
    try:
        return ModelCard.model_validate(card)
    except ValidationError as error:
        log.error("model card %s, version %d, is malformed: %s", path, version, error)
        return None
