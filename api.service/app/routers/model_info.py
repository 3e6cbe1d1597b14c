"""GET /v1/model: which model answers, its labels, and its model card."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.deps import PredictionServiceDep, SettingsDep
from app.errors import MODEL_TIMEOUT, MODEL_UNAVAILABLE, openapi_responses
from app.model_card import ModelCard, card_path, load_card

router = APIRouter(tags=["model"])


class LabelInfo(BaseModel):
    code: str = Field(examples=["CMD"])
    name: str = Field(examples=["Cassava Mosaic Disease (CMD)"])


class ModelDescription(BaseModel):
    """The served model: name, version, labels and card."""

    name: str = Field(examples=["cassava"], description="model name in the model server")
    version: int = Field(examples=[1], description="the version answering predictions now")
    labels: list[LabelInfo] = Field(description="the classes, in the model's output order")
    demo: bool | None = Field(description="the card's `demo`; null when there is no card")
    card: ModelCard | None = Field(
        description="model.json's card for this version; null when it has none")


@router.get("/v1/model", responses=openapi_responses(MODEL_UNAVAILABLE, MODEL_TIMEOUT))
async def describe_model(service: PredictionServiceDep, settings: SettingsDep) -> ModelDescription:
    """Describe the served model: version, labels and model card (is it a demo?)."""
    client = service.client
    versions = await client.available_versions()
    # Unversioned requests go to the highest AVAILABLE version; MODEL_VERSION pins one.
    served = settings.MODEL_VERSION or max(versions, default=None)
    if served is None or served not in versions:
        raise MODEL_UNAVAILABLE.error(
            f"Model {client.model_name!r} has no AVAILABLE version yet.",
            headers={"Retry-After": str(settings.RETRY_AFTER_SECONDS)})
    card = await asyncio.to_thread(load_card, card_path(settings.LABELS_PATH), served)
    return ModelDescription(
        name=client.model_name, version=served,
        labels=[LabelInfo(code=label.code, name=label.name) for label in service.labels],
        demo=card.demo if card else None, card=card)
