"""API fixtures: the app in-process (httpx.ASGITransport) with a fake model server for the fast
lane's route, error and schema tests; the real app under real uvicorn, talking gRPC to the real
model server, for everything else."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

import app.main
from app.core.config import Settings
from tests.support.fake_model_server import FakeModelServer
from tests.support.model_server import RunningModelServer
from tests.support.paths import (
    REPO_ROOT,
    SEED_LABELS,
    SEED_MODEL_NAME,
    VENV_PYTHON,
)
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.reference import ReferenceModel, article_input

API_DIR = REPO_ROOT / "api.service"
FIELD = "image_to_predict"
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_model_server() -> FakeModelServer:
    """The model server as the in-process app sees it; tests change its answers."""
    return FakeModelServer()


@pytest.fixture
def app_settings() -> dict[str, object]:
    """Settings for the in-process app beyond the seed model's name and labels (override it)."""
    return {}


@pytest.fixture
async def app_client(fake_model_server: FakeModelServer, app_settings: dict[str, object],
                     monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process (create_app and its own lifespan), the fake model server in place
    of the gRPC client; requests go through httpx.ASGITransport."""
    monkeypatch.setattr(app.main, "TFServingClient", fake_model_server.connect)
    settings = Settings(**{"MODEL_NAME": SEED_MODEL_NAME, "LABELS_PATH": SEED_LABELS,
                           **app_settings})
    api_app = app.main.create_app(settings)
    async with api_app.router.lifespan_context(api_app):
        transport = httpx.ASGITransport(app=api_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


@dataclass
class ApiServer:
    process: ManagedProcess
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def stop(self) -> int | None:
        return self.process.stop()


def api_env(model_server: RunningModelServer | str, **settings: object) -> dict[str, str]:
    """Environment for the API: the seed model's name and labels, plus `settings`."""
    target = model_server if isinstance(model_server, str) else model_server.grpc_target
    env = {"MODEL_SERVER_ADDRESS": target, "MODEL_NAME": SEED_MODEL_NAME,
           "LABELS_PATH": str(SEED_LABELS), "DECODE_WORKERS": "2"}
    env.update({key: str(value) for key, value in settings.items()})
    return env


def start_api(log_dir: Path, env: dict[str, str], *, name: str = "api",
              wait: bool = True) -> ApiServer:
    """`python -m app` from api.service/, as the image runs it (on loopback); wait for /healthz."""
    port = free_port()
    process = ManagedProcess(
        f"{name}-{port}", [VENV_PYTHON, "-m", "app"], log_dir,
        env={**_without_api_settings(os.environ), "LISTEN_HOST": "127.0.0.1",
             "LISTEN_PORT": str(port), **env}, cwd=API_DIR)
    server = ApiServer(process, port)
    if wait:
        def alive() -> bool:
            return httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200

        try:
            process.wait_until(alive, 60, "/healthz")
        except Exception:
            process.stop()
            raise
    return server


def _without_api_settings(environ: os._Environ[str]) -> dict[str, str]:
    """The test runner's environment minus anything that would configure the API by accident."""
    from app.core.config import Settings

    names = {name.upper() for name in Settings.model_fields}
    return {key: value for key, value in environ.items() if key.upper() not in names}


@pytest.fixture(scope="session")
def seed_api(seed_model_server: RunningModelServer, logs_dir: Path) -> Iterator[ApiServer]:
    """The API in front of the article's model, with default settings."""
    server = start_api(logs_dir, api_env(seed_model_server), name="api-seed")
    yield server
    server.stop()


@pytest.fixture
def api(seed_api: ApiServer) -> Iterator[httpx.Client]:
    with seed_api.client() as client:
        yield client


@pytest.fixture(scope="session")
def reference_predictions(reference_predict: ReferenceModel,
                          leaf_photo_paths: list[Path]) -> dict[str, np.ndarray]:
    """Probabilities per leaf photo name from in-process TensorFlow and the article's pipeline."""
    return {path.name: reference_predict(article_input(path))[0] for path in leaf_photo_paths}
