"""The scripts a newcomer may run before setup: in a copy of scripts/ with no .venv (or a .venv
whose install never finished), `--help` explains and exits 0, anything else says in one line what
to run; never a Python traceback. `scripts/test --help` installs nothing, and `scripts/swarm-lab
deploy` without a host engine says how to start one instead of Docker's raw socket error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import SCRIPTS_DIR

PYTHON_SCRIPTS = ["model-server", "get-model", "bench-model-server", "loadtest", "convert-model",
                  "generate-leaves", "train-demo-model"]


def copy_of_scripts(root: Path, *names: str) -> Path:
    """A repository holding only scripts/<names> and scripts/lib: nothing installed."""
    (root / "scripts").mkdir(parents=True)
    shutil.copytree(SCRIPTS_DIR / "lib", root / "scripts" / "lib")
    for name in names:
        shutil.copy2(SCRIPTS_DIR / name, root / "scripts" / name)
    return root


def run(script: Path, *args: str, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env or os.environ.copy())


@pytest.fixture(params=["no-venv", "interrupted-install"])
def unready_repo(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = copy_of_scripts(tmp_path / "repo", *PYTHON_SCRIPTS)
    if request.param == "interrupted-install":  # a venv's python, but no completion stamp
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return root


@pytest.mark.parametrize("name", PYTHON_SCRIPTS)
def test_help_before_setup_explains_and_exits_0(unready_repo: Path, name: str) -> None:
    result = run(unready_repo / "scripts" / name, "--help")
    assert result.returncode == 0, result
    assert "Traceback" not in result.stdout + result.stderr
    assert "run scripts/bootstrap first" in result.stdout
    # The script's purpose, from its header comment.
    purpose = (SCRIPTS_DIR / name).read_text().splitlines()[1].lstrip("# ")
    assert purpose in result.stdout


@pytest.mark.parametrize("name", PYTHON_SCRIPTS)
def test_a_run_before_setup_says_in_one_line_what_to_run(unready_repo: Path, name: str) -> None:
    result = run(unready_repo / "scripts" / name, "--model_base_path=/nowhere")
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"scripts/{name}: " in result.stderr and "run scripts/bootstrap first" in result.stderr


def test_test_help_installs_nothing(tmp_path: Path) -> None:
    # No scripts/bootstrap in the copy: running it would fail.
    root = copy_of_scripts(tmp_path / "repo", "test")
    result = run(root / "scripts" / "test", "--help")
    assert result.returncode == 0, result
    assert "scripts/test --fast" in result.stdout
    assert not (root / ".venv").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/swarm-lab runs as root")
def test_swarm_lab_deploy_without_a_host_engine_says_how_to_start_one(tmp_path: Path) -> None:
    root = copy_of_scripts(tmp_path / "repo", "swarm-lab")
    state = tmp_path / "state"
    state.mkdir()
    (state / "record").write_text("id 0000\n")  # a lab that `up` recorded
    env = {**os.environ, "SWARM_LAB_STATE": str(state),
           "DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}
    result = run(root / "scripts" / "swarm-lab", "deploy", env=env)
    assert result.returncode == 1, result
    assert "scripts/docker-engine start" in result.stderr
    assert "failed to connect" not in result.stderr.lower(), result.stderr
