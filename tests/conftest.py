"""Fixtures shared by every test directory. Directory-specific ones live beside their tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.local_stack import LocalStack, start_local_stack
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import (
    DEMO_MODEL_NAME,
    MODEL_REPOSITORY,
    SEED_MODEL_BASE_PATH,
    SEED_MODEL_NAME,
    SHARED_DIR,
    leaf_photos,
)
from tests.support.reference import ReferenceModel, load_reference_model


def pytest_sessionstart(session: pytest.Session) -> None:
    if not SHARED_DIR.is_dir():
        raise pytest.UsageError(f"{SHARED_DIR} is missing: tests read ../shared beside the repo")


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where child processes write their logs (printed when a start fails)."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/ in the repo: screenshots and reports kept after the run."""
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).parents[1] / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def leaf_photo_paths() -> list[Path]:
    photos = leaf_photos()
    assert photos, "no leaf photos in ../shared/fixtures/leaf-photos"
    return photos


@pytest.fixture(scope="session")
def reference_predict() -> Iterator[ReferenceModel]:
    """The article's SavedModel run in-process by TensorFlow: `reference_predict(batch)` is the
    probabilities batch every served answer is compared with."""
    model = load_reference_model()
    yield model
    model.close()


@pytest.fixture(scope="session")
def seed_model_server(logs_dir: Path) -> Iterator[RunningModelServer]:
    """The article's SavedModel (TF 2.4) served by scripts/model-server, shared by the session."""
    server = start_model_server(SEED_MODEL_NAME, SEED_MODEL_BASE_PATH, logs_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_model_server(logs_dir: Path) -> Iterator[RunningModelServer]:
    """The bundled demo model (model.service/models/cassava) served by scripts/model-server."""
    server = start_model_server(DEMO_MODEL_NAME, MODEL_REPOSITORY / DEMO_MODEL_NAME, logs_dir)
    yield server
    server.stop()


# --- The no-Docker stack (scripts/run-local) ------------------------------------------------------

@pytest.fixture(scope="session")
def local_stack(logs_dir: Path) -> Iterator[LocalStack]:
    """scripts/run-local on free ports with the article's model, shared by the session.
    Do not kill its services: use local_stack_factory for that."""
    stack = start_local_stack(logs_dir)
    yield stack
    stack.stop()


@pytest.fixture
def local_stack_factory(logs_dir: Path) -> Iterator[Callable[..., LocalStack]]:
    """Start private stacks (start_local_stack's keyword arguments, e.g. keep_going=True to
    survive stack.stop_service("api"), or env={"MAX_UPLOAD_BYTES": "50000"}); all stopped after
    the test."""
    stacks: list[LocalStack] = []

    def start(**kwargs: object) -> LocalStack:
        stack = start_local_stack(logs_dir, **kwargs)  # type: ignore[arg-type]
        stacks.append(stack)
        return stack

    yield start
    for stack in stacks:
        stack.stop()
