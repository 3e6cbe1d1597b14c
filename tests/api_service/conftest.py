"""API fixtures: the real app under real uvicorn, talking gRPC to the real model server."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.model_server import RunningModelServer
from tests.support.paths import (
    REPO_ROOT,
    SEED_LABELS,
    SEED_MODEL_BASE_PATH,
    SEED_MODEL_NAME,
    VENV_PYTHON,
)
from tests.support.processes import ManagedProcess, free_port

API_DIR = REPO_ROOT / "api.service"
FIELD = "image_to_predict"
PROBLEM_JSON = "application/problem+json"


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
              wait: bool = True, extra_args: tuple[str, ...] = ()) -> ApiServer:
    """`uvicorn app.main:app` from api.service/, as the Dockerfile runs it; wait for /healthz."""
    port = free_port()
    process = ManagedProcess(
        f"{name}-{port}",
        [VENV_PYTHON, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log", *extra_args],
        log_dir, env={**_without_api_settings(os.environ), **env}, cwd=API_DIR)
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


def reference_preprocess(data: bytes) -> np.ndarray:
    """The article's serving preprocessing: full decode, RGB, default-filter resize, /255."""
    image = Image.open(io.BytesIO(data)).convert("RGB").resize((150, 150))
    return np.float32(np.asarray(image) / 255.0)[np.newaxis]


@pytest.fixture(scope="session")
def reference_model() -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """The seed SavedModel run in-process by TensorFlow (its v1 SignatureDef loader)."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, ["serve"], str(SEED_MODEL_BASE_PATH / "1"))
    signature = meta_graph.signature_def["serving_default"]
    input_name = signature.inputs["conv2d_4_input"].name
    output_name = signature.outputs["dense_3"].name

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(output_name, feed_dict={input_name: batch})[0]

    yield run
    session.close()


@pytest.fixture(scope="session")
def reference_predictions(reference_model: Callable[[np.ndarray], np.ndarray],
                          leaf_photo_paths: list[Path]) -> dict[str, np.ndarray]:
    """Probabilities per leaf photo name from in-process TensorFlow and the reference pipeline."""
    return {path.name: reference_model(reference_preprocess(path.read_bytes()))
            for path in leaf_photo_paths}
