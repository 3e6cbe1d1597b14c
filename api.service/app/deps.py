"""Request dependencies as Annotated aliases (full-stack-fastapi-template style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import UploadFile

from app.core.config import Settings
from app.core.request_id import choose_request_id, request_id_of
from app.prediction_service import PredictionService
from app.upload import read_image_upload, read_image_uploads


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_prediction_service(request: Request) -> PredictionService:
    service: PredictionService = request.app.state.prediction_service
    return service


def get_request_id(request: Request) -> str:
    return request_id_of(request.scope) or choose_request_id(None)


SettingsDep = Annotated[Settings, Depends(get_settings)]
PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ImageUploadDep = Annotated[bytes, Depends(read_image_upload)]
ImageUploadsDep = Annotated[list[UploadFile | str], Depends(read_image_uploads)]
