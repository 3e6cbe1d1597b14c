"""The two test tiers. `scripts/test --fast` runs the unit tier: no TensorFlow in the test process,
no child-process servers, no browser, no Docker. What makes a test heavy is decided mechanically
(tests/conftest.py applies it at collection): the fixtures it uses, and whether its module imports
TensorFlow at import time (read from the source, following the project's own modules, so that the
fast lane does not even import such a module)."""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

from tests.support.paths import REPO_ROOT

# Markers that keep a test out of the fast lane (all declared in pyproject.toml).
HEAVY_MARKERS = ("slow", "servers", "stack", "browser", "docker", "tensorflow")

# Fixture -> the marker every test using it gets (directly or through other fixtures: pytest lists
# the whole closure in item.fixturenames). logs_dir is where every child-process server started
# by the tests writes its log, so any test that starts one (fixture or not) asks for it.
HEAVY_FIXTURES = {
    "logs_dir": "servers",
    "seed_model_server": "servers",
    "demo_model_server": "servers",
    "seed_api": "servers",
    "api": "servers",
    "local_stack": "stack",
    "local_stack_factory": "stack",
    "ui": "stack",
    "playwright": "browser",
    "browser": "browser",
    "context": "browser",
    "page": "browser",
    "docker_engine": "docker",
    "offline_build": "docker",
    "offline_bases": "docker",
    "stack": "docker",
    "swarm_lab": "docker",
    "podman": "docker",
    "rendered": "slow",
    "reference_predict": "tensorflow",
    "reference_predictions": "tensorflow",
}

TENSORFLOW_PACKAGES = frozenset({"tensorflow", "keras", "tf_keras"})

# Where first-party modules live: the repository (tests.*) and pyproject's pythonpath.
SOURCE_ROOTS = (REPO_ROOT, REPO_ROOT / "model.service", REPO_ROOT / "api.service")
# Third-party packages that are followed too, because some of their modules import TensorFlow
# and some do not (tensorflow_serving.apis does, tensorflow_serving.config does not).
FOLLOWED_PACKAGES = frozenset({"tensorflow_serving"})
SITE_PACKAGES = Path(sysconfig.get_path("purelib"))


def heavy_markers(fixturenames: Iterable[str]) -> set[str]:
    """The markers a test gets from the fixtures it uses."""
    return {HEAVY_FIXTURES[name] for name in fixturenames if name in HEAVY_FIXTURES}


def is_heavy(marker_names: Iterable[str]) -> bool:
    return not set(marker_names).isdisjoint(HEAVY_MARKERS)


_decided: dict[Path, bool] = {}


def imports_tensorflow(path: Path) -> bool:
    """Whether importing the module at `path` imports TensorFlow (or TF Serving's API, which
    imports it), through its own module-level imports or those of first-party modules it
    imports. Imports inside functions are not followed: they run only when called."""
    path = path.resolve()
    if path not in _decided:
        _decided[path] = False  # being decided: an import cycle back here adds nothing
        _decided[path] = any(
            name.split(".")[0] in TENSORFLOW_PACKAGES
            or ((module := _module_file(name)) is not None and imports_tensorflow(module))
            for name in _module_level_imports(path))
    return _decided[path]


@cache
def _module_file(name: str) -> Path | None:
    """The source file of a first-party or followed module, or None for anything else."""
    parts = name.split(".")
    roots = (*SOURCE_ROOTS, SITE_PACKAGES) if parts[0] in FOLLOWED_PACKAGES else SOURCE_ROOTS
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate.resolve()
    return None


def _module_level_imports(path: Path) -> Iterator[str]:
    """Every module name (and each parent package) that importing `path` imports directly."""
    tree = ast.parse(path.read_text(), str(path))
    for node in _executed_at_import(tree.body):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from a import b`: b may be a module of package a.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            parts = name.split(".")
            yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _executed_at_import(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when a module is imported: the body, minus function bodies,
    plus the blocks of if/try/with/class statements."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _executed_at_import(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            yield from _executed_at_import(handler.body)
