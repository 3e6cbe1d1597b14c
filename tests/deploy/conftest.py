"""Fixtures of the deployment tests: a three-node Swarm lab with the stack deployed.

Without a Docker engine, or without root (network namespaces), the lab tests skip with the
reason; with CI=true they fail instead."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose.conftest import engine_problem
from tests.deploy.swarm_lab import Lab
from tests.support.absent import skip_or_fail

# Cold: the four images built on the stand-in bases; warm (after tests/compose): a minute.
DEPLOY_TIMEOUT = 1800


def lab_problem() -> str | None:
    if os.geteuid() != 0:
        return "the Swarm lab needs root (network namespaces, dockerd)"
    return engine_problem()


@pytest.fixture(scope="session")
def swarm_lab(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Iterator[Lab]:
    """`scripts/swarm-lab up` + `deploy` with a private state dir; always `down` afterwards (the
    nodes' and the stack's state is kept in test-artifacts/swarm-lab.log)."""
    problem = lab_problem()
    if problem is not None:
        skip_or_fail(problem)
    reuse = os.environ.get("SWARM_LAB_REUSE")  # a developer's lab: used as is, kept afterwards
    if reuse:
        lab = Lab(env={**os.environ, "SWARM_LAB_STATE": reuse})
        lab.load_facts()
        yield lab
        return
    state = tmp_path_factory.mktemp("swarm-lab")
    lab = Lab(env={**os.environ, "SWARM_LAB_STATE": str(state),
                   "SWARM_LAB_DATA": str(state / "data"),
                   "IMAGE_TAG": os.environ.get("CASSAVA_TEST_IMAGE_TAG", "swarm-lab"),
                   "DEPLOY_TIMEOUT": "900"})
    try:
        lab.script("up", timeout=180)
        lab.load_facts()
        lab.script("deploy", timeout=DEPLOY_TIMEOUT)
        yield lab
    finally:
        status = lab.script("status", check=False, timeout=60)
        logs = "".join(path.read_text(errors="replace")[-20000:]
                       for path in sorted(state.glob("node*.log")))
        (artifacts_dir / "swarm-lab.log").write_text(status.stdout + status.stderr + logs)
        lab.script("down", check=False, timeout=900)
