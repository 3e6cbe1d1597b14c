"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from app.deps import PredictionServiceDep, SettingsDep
from app.errors import MODEL_MISCONFIGURED, MODEL_UNAVAILABLE, openapi_responses
from app.schemas import Liveness, Readiness
from app.tfserving.client import ModelServerError

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Liveness:
    """Liveness: the process answers HTTP (nothing else is checked)."""
    return Liveness()


@router.get("/readyz",
            responses=openapi_responses(MODEL_UNAVAILABLE, MODEL_MISCONFIGURED))
async def readyz(service: PredictionServiceDep, settings: SettingsDep) -> Readiness:
    """Readiness: the model server reports the model AVAILABLE and its signature fits the labels."""
    retry = {"Retry-After": str(settings.RETRY_AFTER_SECONDS)}
    name = service.client.model_name
    try:
        versions = await service.client.available_versions()
        if versions:
            await service.signature()
    except ModelServerError as error:  # down, slow or failing: all mean "not ready"
        log.warning("not ready: %s", error)
        raise MODEL_UNAVAILABLE.error(f"The model server cannot serve model {name!r} right now.",
                                      headers=retry) from None
    if not versions:
        raise MODEL_UNAVAILABLE.error(f"Model {name!r} has no AVAILABLE version yet.",
                                      headers=retry)
    return Readiness(model=service.client.model_name, available_versions=versions)
