"""Fixtures shared by every test directory (directory-specific ones live beside their tests), and
the two tiers: every test that uses a heavy fixture or whose module imports TensorFlow is marked
at collection (tests/support/tiers.py), and `--fast` runs only the others."""

from __future__ import annotations

import os
import sys
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
from tests.support.processes import ManagedProcess
from tests.support.reference import ReferenceModel, load_reference_model
from tests.support.tiers import heavy_markers, imports_tensorflow, is_heavy


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true",
                     help="the unit tier only: no TensorFlow, no child-process servers, no "
                          "browser, no Docker (scripts/test --fast)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fast"):
        config.pluginmanager.register(FastLane(), "fast-lane")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the heavy fixtures it uses and by what its module imports."""
    for item in items:
        for marker in sorted(heavy_markers(item.fixturenames)):
            item.add_marker(marker)
        if imports_tensorflow(item.path):
            item.add_marker("tensorflow")


class FastLane:
    """`--fast`: modules that import TensorFlow are not even imported, heavy tests are deselected,
    and anything that still loads TensorFlow or starts a server fails instead of slowing the lane
    down."""

    def __init__(self) -> None:
        self.skipped_modules: list[str] = []
        self.deselected = 0
        self.patch = pytest.MonkeyPatch()
        self.patch.setattr(ManagedProcess, "__init__", _refuse_to_start)

    def pytest_unconfigure(self) -> None:
        self.patch.undo()

    def pytest_ignore_collect(self, collection_path: Path,
                              config: pytest.Config) -> bool | None:
        if (collection_path.suffix == ".py" and collection_path.name.startswith("test_")
                and imports_tensorflow(collection_path)):
            self.skipped_modules.append(os.path.relpath(collection_path, config.rootpath))
            return True
        return None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if "tensorflow" in sys.modules:
            raise pytest.UsageError(
                f"--fast: collecting {report.nodeid or 'the conftest files'} imported TensorFlow; "
                "import it inside the fixture or test that needs it")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        heavy = [item for item in items if is_heavy(m.name for m in item.iter_markers())]
        if heavy:
            config.hook.pytest_deselected(items=heavy)
            left_out = set(heavy)
            items[:] = [item for item in items if item not in left_out]
        self.deselected = len(heavy)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> object:
        result = yield
        if "tensorflow" in sys.modules:
            item.session.shouldfail = (
                f"--fast: {item.nodeid} imported TensorFlow; mark it tensorflow or use a fixture "
                "that does (tests/support/tiers.py)")
        return result

    def pytest_terminal_summary(self, terminalreporter) -> None:
        terminalreporter.write_line(
            f"fast lane: {self.deselected} heavy tests deselected; not imported (TensorFlow): "
            f"{', '.join(self.skipped_modules) or 'none'}")


def _refuse_to_start(self: ManagedProcess, name: str, *args: object, **kwargs: object) -> None:
    raise RuntimeError(f"--fast starts no child-process servers ({name}); such a test needs the "
                       "logs_dir fixture, which marks it heavy")


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
