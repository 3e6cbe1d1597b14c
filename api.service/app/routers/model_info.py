"""GET /v1/model: which model answers, its labels, its model card and its on-device artifact;
GET /v1/model/versions/{version}/on-device/{sha256}.tflite: that artifact."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.core.problems import ProblemError
from app.deps import PredictionServiceDep, SettingsDep
from app.errors import (
    INVALID_REQUEST,
    MODEL_ERROR,
    MODEL_TIMEOUT,
    MODEL_UNAVAILABLE,
    ON_DEVICE_NOT_FOUND,
    openapi_responses,
)
from app.model_card import ModelCard, card_path, load_card
from app.on_device import OnDeviceArtifact, find_artifact, read_verified

router = APIRouter(tags=["model"])

# The file's URL names its SHA-256: its bytes never change, so caches may keep it for a year.
IMMUTABLE = "public, max-age=31536000, immutable"


class LabelInfo(BaseModel):
    code: str = Field(examples=["CMD"])
    name: str = Field(examples=["Cassava Mosaic Disease (CMD)"])


class OnDeviceModel(BaseModel):
    """The served version as a TensorFlow Lite file, for phones, the page and the survey tool:
    input float32 [1, 150, 150, 3] RGB in [0, 1] (the API's preprocessing, docs/mobile.md),
    output the softmax over `labels`."""

    format: Literal["tflite"] = "tflite"
    url: str = Field(examples=["/v1/model/versions/1/on-device/"
                               "6336ed9d725bee764bf180051648d5e48cd2b752e88c1570f86197d6ec0ddde2"
                               ".tflite"],
                     description="path relative to the API root (the page prefixes /api)")
    sha256: str = Field(description="SHA-256 of the file, lower-case hex: verify before use")
    bytes: int = Field(examples=[81608], description="size of the file")
    quantization: Literal["float16", "dynamic_range", "float32"]
    version: int = Field(examples=[1], description="the model version it was made from")

    @classmethod
    def of(cls, artifact: OnDeviceArtifact) -> OnDeviceModel:
        return cls(url=artifact.url, sha256=artifact.sha256, bytes=artifact.size,
                   quantization=artifact.quantization, version=artifact.version)


class ModelDescription(BaseModel):
    """The served model: name, version, labels, card and on-device artifact."""

    name: str = Field(examples=["cassava"], description="model name in the model server")
    version: int = Field(examples=[1], description="the version answering predictions now")
    labels: list[LabelInfo] = Field(description="the classes, in the model's output order")
    demo: bool | None = Field(description="the card's `demo`; null when there is no card")
    card: ModelCard | None = Field(
        description="model.json's card for this version; null when it has none")
    on_device: OnDeviceModel | None = Field(
        description="the version as a file to run on the device; null when it has none (or "
                    "the file does not match its card)")


def _on_device_not_found(version: int, sha256: str) -> ProblemError:
    return ON_DEVICE_NOT_FOUND.error(
        f"Version {version} has no on-device model with SHA-256 {sha256[:64]}; "
        "GET /v1/model names the current one.")


def _artifact(settings: SettingsDep, version: int) -> OnDeviceArtifact | None:
    """Blocking (reads model.json and hashes the file once per change): run in a thread."""
    path = card_path(settings.LABELS_PATH)
    return find_artifact(path.parent, version, load_card(path, version))


@router.get("/v1/model",
            responses=openapi_responses(MODEL_ERROR, MODEL_UNAVAILABLE, MODEL_TIMEOUT))
async def describe_model(service: PredictionServiceDep,
                         settings: SettingsDep) -> ModelDescription:
    """Describe the served model: version, labels, model card (is it a demo?), on-device file."""
    client = service.client
    versions = await client.available_versions()
    # Unversioned requests go to the highest AVAILABLE version; MODEL_VERSION pins one.
    served = settings.MODEL_VERSION or max(versions, default=None)
    if served is None or served not in versions:
        raise MODEL_UNAVAILABLE.error(
            f"Model {client.model_name!r} has no AVAILABLE version yet.",
            headers={"Retry-After": str(settings.RETRY_AFTER_SECONDS)})
    path = card_path(settings.LABELS_PATH)
    card = await asyncio.to_thread(load_card, path, served)
    artifact = await asyncio.to_thread(find_artifact, path.parent, served, card)
    return ModelDescription(
        name=client.model_name, version=served,
        labels=[LabelInfo(code=label.code, name=label.name) for label in service.labels],
        demo=card.demo if card else None, card=card,
        on_device=OnDeviceModel.of(artifact) if artifact else None)


@router.get("/v1/model/versions/{version}/on-device/{sha256}.tflite",
            response_class=Response, summary="The on-device model file of a version",
            responses={
                200: {"content": {"application/octet-stream": {}},
                      "description": "The TensorFlow Lite file (immutable: cache it)"},
                304: {"description": "The client's copy (If-None-Match) is this file"},
                **openapi_responses(ON_DEVICE_NOT_FOUND, INVALID_REQUEST)})
async def on_device_file(version: int, sha256: str, request: Request,
                         settings: SettingsDep) -> Response:
    """The on-device (TensorFlow Lite) file of a model version, named by its SHA-256."""
    artifact = await asyncio.to_thread(_artifact, settings, version)
    if artifact is None or artifact.sha256 != sha256:
        raise _on_device_not_found(version, sha256)
    etag = f'"{artifact.sha256}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    content = await asyncio.to_thread(read_verified, artifact)
    if content is None:  # replaced or damaged since it was checked: as if it were not there
        raise _on_device_not_found(version, sha256)
    return Response(content, media_type="application/octet-stream", headers=headers)
