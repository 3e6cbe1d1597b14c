"""The FastAPI application `app.main:app`, served by `python -m app` (app/server.py) from
api.service/."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core import logs, memory
from app.core import metrics as api_metrics
from app.core.body_limit import BodySizeLimitMiddleware
from app.core.config import Settings, settings_from_environment
from app.core.metrics import ObservedRequestsMiddleware
from app.core.request_id import RequestIdMiddleware
from app.decode_budget import DecodeBudget
from app.docs import install_docs
from app.errors import add_problem_schema, install_error_handlers
from app.labels import load_labels
from app.model_card import card_path
from app.prediction_service import LabelsMismatch, PredictionService
from app.rollout import RolloutFile, ShadowTasks
from app.routers import health, metrics, model_info, predictions
from app.tfserving.client import ModelUnavailable, TFServingClient

log = logging.getLogger("app")

# Blocks this large are mapped on their own and unmapped on free (app.core.memory): decoded images
# and Pillow's 16 MiB blocks, not the many small objects of a request.
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024

DESCRIPTION = """Cassava leaf disease classifier. POST a JPEG or PNG photo of a cassava leaf to
`/predict/image` (multipart field `image_to_predict`), or several to `/v1/predict/images` (field
`images`). Errors are `application/problem+json`
(RFC 9457) with a stable `code`."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load labels, open the one gRPC channel and the decode pool; close them on shutdown."""
    settings: Settings = app.state.settings
    logs.configure(settings.LOG_FORMAT, settings.LOG_LEVEL)
    labels = load_labels(settings.LABELS_PATH)  # a bad labels file stops the startup, loudly
    memory.map_large_allocations(MMAP_THRESHOLD_BYTES)
    client = TFServingClient(
        settings.MODEL_SERVER_ADDRESS, settings.MODEL_NAME, version=settings.MODEL_VERSION,
        signature_name=settings.SIGNATURE_NAME, deadline=settings.MODEL_DEADLINE_SECONDS,
        retry_attempts=settings.MODEL_RETRY_ATTEMPTS, lb_policy=settings.MODEL_SERVER_LB_POLICY,
        reopen_seconds=settings.MODEL_SERVER_REOPEN_SECONDS,
        attempt_timeout=settings.MODEL_ATTEMPT_TIMEOUT_SECONDS)
    pool = ThreadPoolExecutor(settings.DECODE_WORKERS, thread_name_prefix="decode")
    budget = DecodeBudget(settings.DECODE_MEMORY_BYTES, max_wait=settings.DECODE_WAIT_SECONDS)
    app.state.prediction_service = PredictionService(
        client, labels, pool, max_pixels=settings.MAX_IMAGE_PIXELS,
        low_confidence_threshold=settings.LOW_CONFIDENCE_THRESHOLD, decode_budget=budget,
        min_image_side=settings.MIN_IMAGE_SIDE, min_pixel_spread=settings.MIN_PIXEL_SPREAD,
        decodes_per_batch=settings.DECODE_WORKERS, card_file=card_path(settings.LABELS_PATH),
        rollout=RolloutFile(settings.ROLLOUT_FILE, api_metrics.record_rollout_file_error),
        shadow=ShadowTasks(settings.SHADOW_MAX_CONCURRENT, api_metrics.record_shadow_dropped))
    log.info("model %r at %s, %d labels from %s", settings.MODEL_NAME,
             settings.MODEL_SERVER_ADDRESS, len(labels), settings.LABELS_PATH)
    try:
        await _check_model(app.state.prediction_service)
        yield
    finally:
        await app.state.prediction_service.shadow.drain()
        await client.close()
        pool.shutdown(wait=True, cancel_futures=True)


async def _check_model(service: PredictionService) -> None:
    """Fetch the signature early so a labels/model mismatch is logged at startup. The model
    server may legitimately start later: the API still starts, and /readyz says 503 meanwhile."""
    try:
        await service.signature()
    except LabelsMismatch as error:
        log.error("MISCONFIGURED: %s Fix LABELS_PATH or the model; /readyz stays 503.", error)
    except ModelUnavailable:
        # The usual start-up order (run-local, compose): the model server is still loading.
        log.info("waiting for the model server (not answering yet); /readyz answers 503 "
                 "until it does")
    except Exception as error:
        log.warning("model not checked at startup (%s: %s); /readyz reports it",
                    type(error).__name__, error)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own Settings."""
    settings = settings or settings_from_environment()
    app = FastAPI(title="Cassava leaf disease API", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan, root_path=settings.ROOT_PATH, docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_docs(app)  # Swagger UI from local files (app/docs.py); no ReDoc (CDN only)
    app.include_router(predictions.router)
    app.include_router(health.router)
    app.include_router(model_info.router)
    if settings.METRICS_ENABLED:
        app.include_router(metrics.router)
    install_error_handlers(app, settings)
    # Added last = outermost: the request id exists before the body cap can answer 413 and
    # before the access log line is written; both see every request, the 413s included.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_UPLOAD_BYTES,
                       path_caps={"/v1/predict/images": settings.MAX_BATCH_BYTES})
    app.add_middleware(ObservedRequestsMiddleware, record_metrics=settings.METRICS_ENABLED)
    app.add_middleware(RequestIdMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_problem_schema(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
