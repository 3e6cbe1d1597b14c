"""Fixtures of the docker compose tests: the engine, the offline base images, one running stack.

Without a reachable Docker engine the engine-bound tests skip with the reason; with CI=true they
fail instead, so a CI machine that lost its engine cannot pass by skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.compose.project import OFFLINE_ENV, ComposeProject, read_env_file, run
from tests.support.absent import skip_or_fail
from tests.support.paths import MODEL_REPOSITORY, SCRIPTS_DIR
from tests.support.ports import free_port

# Cold: debootstrap + TensorFlow from PyPI (about 5 min here); warm: seconds.
OFFLINE_BUILD_TIMEOUT = 2400
# Cold: four image builds on the stand-ins (pip installs the API's requirements) + start.
UP_TIMEOUT = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """pytest-timeout's limit (pyproject.toml) counts fixture setup: the first compose test may
    build the offline bases and the images cold, each step bounded by its own timeout above."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(OFFLINE_BUILD_TIMEOUT + UP_TIMEOUT + 600))


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None when `docker info` works."""
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if result.returncode != 0:
        return f"`docker info` failed: {result.stderr.strip()[:300]}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A reachable engine; skip (or fail when CI=true) with the reason otherwise."""
    problem = engine_problem()
    if problem is None:
        return
    skip_or_fail(f"no Docker engine reachable ({problem}); "
                 "start one with scripts/docker-engine start")


@pytest.fixture(scope="session")
def offline_build(docker_engine: None) -> subprocess.CompletedProcess[str]:
    """scripts/build-offline-bases, run once per session (idempotent: cached by input hash)."""
    return run([str(SCRIPTS_DIR / "build-offline-bases")], timeout=OFFLINE_BUILD_TIMEOUT)


@pytest.fixture(scope="session")
def offline_bases(offline_build: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The base-image variables of docker/offline/offline.env: VAR -> local stand-in image."""
    return read_env_file(OFFLINE_ENV)


def copy_model_repository(target: Path) -> Path:
    """A private copy of model.service/models, readable by the containers' non-root users."""
    assert (MODEL_REPOSITORY / "cassava" / "labels.json").is_file(), (
        f"{MODEL_REPOSITORY} has no cassava model (the demo model is built into the image)")
    shutil.copytree(MODEL_REPOSITORY, target,
                    ignore=shutil.ignore_patterns("__pycache__", ".*"))
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@contextmanager
def running_stack(offline_bases: dict[str, str], workdir: Path, log_path: Path,
                  profiles: tuple[str, ...] = (),
                  extra_settings: dict[str, str] | None = None,
                  overrides: tuple[Path, ...] = (),
                  prepare: Callable[[Path], None] | None = None) -> Iterator[ComposeProject]:
    """`docker compose up --build --wait` of docker-compose.yml (with `profiles` and the
    `overrides` compose files) on the offline bases, on 127.0.0.1:<free port>, with a temporary
    copy of the model repository mounted (`prepare(repository)` runs on it first); always
    `down -v` afterwards (its logs are kept in log_path)."""
    repository = copy_model_repository(workdir / "models")
    if prepare is not None:
        prepare(repository)
    project = ComposeProject(name=f"cassava-test-{uuid.uuid4().hex[:8]}",
                             env_file=workdir / "test.env", port=free_port(), profiles=profiles,
                             overrides=overrides)
    settings = {
        **offline_bases,
        "HTTP_BIND": "127.0.0.1",
        "HTTP_PORT": str(project.port),
        "MODEL_REPOSITORY": str(repository),
        # A broken version is reported failed at once, not after five one-minute retries.
        "MODEL_LOAD_RETRIES": "0",
        # Parallel checkouts sharing one engine set their own tag so their images don't collide.
        "IMAGE_TAG": os.environ.get("CASSAVA_TEST_IMAGE_TAG", "compose-test"),
        **(extra_settings or {}),
    }
    project.env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    try:
        result = project.compose("up", "--build", "--wait", timeout=UP_TIMEOUT,
                                 check=False)
        if result.returncode != 0:
            pytest.fail(f"docker compose up --build --wait exited {result.returncode}:\n"
                        f"{result.stderr[-4000:]}\n{project.logs(tail=60)}", pytrace=False)
        yield project
    finally:
        log_path.write_text(project.logs(tail=2000))
        project.compose("down", "--volumes", "--remove-orphans", "--timeout", "10",
                        timeout=180, check=False)


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    """.env settings a test module adds to its stack (override it in the module)."""
    return {}


@pytest.fixture(scope="module")
def stack(offline_bases: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
          artifacts_dir: Path, stack_settings: dict[str, str]) -> Iterator[ComposeProject]:
    """The default stack (no profile) with the module's `stack_settings`; logs in
    test-artifacts/compose-stack.log."""
    with running_stack(offline_bases, tmp_path_factory.mktemp("compose"),
                       artifacts_dir / "compose-stack.log",
                       extra_settings=stack_settings) as project:
        yield project
