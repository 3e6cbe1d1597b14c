"""All settings of the API, read once from the environment (no prefix)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict

# In a repository checkout: the bundled demo model's labels. Containers set LABELS_PATH.
_REPO_LABELS = Path(__file__).resolve().parents[3] / "model.service/models/cassava/labels.json"


class Settings(BaseSettings):
    """Every knob of the service; docs/api-service.md has the table."""

    model_config = SettingsConfigDict(case_sensitive=False, frozen=True, extra="ignore")

    MODEL_SERVER_ADDRESS: str = Field(
        "127.0.0.1:8500", description="TF Serving gRPC target: host:port, or e.g. "
        "dns:///tasks.model.service:8500 to reach every replica a DNS name returns")
    MODEL_SERVER_LB_POLICY: Literal["round_robin", "pick_first"] = Field(
        "round_robin", description="gRPC load balancing over the target's addresses")
    MODEL_SERVER_REOPEN_SECONDS: float = Field(
        0.0, ge=0.0, description="reopen the gRPC channel this often, resolving the target "
        "afresh (replicas added since); 0 = never")
    MODEL_NAME: str = "cassava"
    MODEL_VERSION: PositiveInt | None = Field(
        None, description="pin one model version; unset = the newest version the server serves")
    SIGNATURE_NAME: str = "serving_default"
    ROLLOUT_FILE: Path | None = Field(
        None, description="JSON rollout plan written by scripts/model-rollout beside the model "
        "server's config ({\"canary_percent\": 10, \"shadow_percent\": 0}); when it exists, "
        "predictions ask for version labels (stable, canary), docs/model-rollout.md; unset or "
        "absent = no labels")
    SHADOW_MAX_CONCURRENT: PositiveInt = Field(
        4, description="shadow calls to canary running at once; more are dropped, never queued")
    LABELS_PATH: Path = _REPO_LABELS

    MAX_UPLOAD_BYTES: PositiveInt = 10 * 1024 * 1024
    MAX_BATCH_FILES: PositiveInt = Field(
        16, description="photos per POST /v1/predict/images (one Predict call carries them all)")
    MAX_BATCH_BYTES: PositiveInt = Field(
        16 * 1024 * 1024, description="request body cap of POST /v1/predict/images")
    MAX_IMAGE_PIXELS: PositiveInt = Field(
        50_000_000, description="pixel cap read from the image header, before decoding")
    LOW_CONFIDENCE_THRESHOLD: float = Field(0.5, ge=0.0, le=1.0)
    DECODE_MEMORY_BYTES: PositiveInt = Field(
        512 * 1024 * 1024, description="memory one image may need to decode, and all concurrent "
        "decodes together (estimated from the header); larger images get 413 image_too_costly")
    DECODE_WAIT_SECONDS: PositiveFloat = Field(
        10.0, description="how long a decode waits for its memory before 503 decoder_busy")
    MIN_IMAGE_SIDE: PositiveInt = Field(
        32, description="fewer pixels on the short side: 422 image_too_small")
    MIN_PIXEL_SPREAD: float = Field(
        0.015, ge=0.0, le=1.0, description="largest per-channel standard deviation (0..1) of "
        "the model's input below which a picture is blank: 422 blank_image; 0 turns it off")

    MODEL_DEADLINE_SECONDS: PositiveFloat = Field(
        5.0, description="deadline of every gRPC call, retries included")
    MODEL_RETRY_ATTEMPTS: int = Field(3, ge=1, le=5, description="gRPC attempts on UNAVAILABLE")
    MODEL_ATTEMPT_TIMEOUT_SECONDS: float = Field(
        0.0, ge=0.0, description="an attempt unanswered this long is retried on another "
        "replica (within MODEL_DEADLINE_SECONDS); 0 = attempts are not timed")
    RETRY_AFTER_SECONDS: PositiveInt = Field(
        5, description="Retry-After sent with 503 model_unavailable and 503 decoder_busy")
    DECODE_WORKERS: PositiveInt = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)),
        description="threads decoding images (Pillow releases the GIL); default: usable CPUs")

    ROOT_PATH: str = Field("", description="prefix a path-stripping proxy serves the app under")

    # The server (`python -m app`, app/server.py): where it listens, whom it trusts, how many.
    LISTEN_HOST: str = Field("0.0.0.0", description="address uvicorn listens on")
    LISTEN_PORT: int = Field(8000, ge=1, le=65535, description="port uvicorn listens on")
    FORWARDED_ALLOW_IPS: str = Field(
        "127.0.0.1", description="addresses whose X-Forwarded-For/-Proto are trusted (the "
        "proxy's; comma-separated, * = any): the client address and scheme in logs and limits")
    WORKERS: PositiveInt = Field(
        1, description="uvicorn worker processes (with PROMETHEUS_MULTIPROC_DIR when > 1)")

    LOG_FORMAT: Literal["json", "text"] = Field(
        "json", description="json: one JSON object per line; text: for a terminal")
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    METRICS_ENABLED: bool = Field(
        True, description="GET /metrics and the request metrics (off only to measure their cost)")


@lru_cache
def settings_from_environment() -> Settings:
    """The process's settings (cached: the environment is read once)."""
    return Settings()
