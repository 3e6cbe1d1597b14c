"""scripts/run-local as a process: readiness output, clean stops, no orphans, clear failures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.local_stack import (
    SERVICE_NAMES,
    UI_HOST,
    LocalStack,
    pid_alive,
    process_group_members,
)
from tests.support.paths import SCRIPTS_DIR, SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def every_pid(stack: LocalStack) -> set[int]:
    """Each service's process and everything in its process group (e.g. nginx's worker)."""
    pids = set(stack.services.values())
    for pid in stack.services.values():
        pids.update(process_group_members(pid))
    return pids


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """The pids still alive after waiting up to `timeout` seconds for all of them to end."""
    def survivors() -> set[int]:
        return {p for p in pids if pid_alive(p)}

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not survivors(), timeout, "every process gone", every=0.1)
    return survivors()


def run_local_fails(env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPTS_DIR / "run-local")], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "MODEL_BASE_PATH":
                               str(SEED_MODEL_BASE_PATH.parent), "MODEL_NAME": SEED_MODEL_NAME,
                               **env}, timeout=timeout, check=False)


def test_it_shows_each_service_becoming_ready(local_stack: LocalStack) -> None:
    log = local_stack.log()
    assert f"open   http://{UI_HOST}:{local_stack.port}/" in log
    assert f"http://api.service.localhost:{local_stack.port}/" in log
    assert "model-server | " in log and "Loading servable" in log
    assert "Successfully loaded servable" in log
    for name in SERVICE_NAMES:
        assert f"run-local    | {name} ready:" in log, name
    assert "model-server ready: AVAILABLE" in log
    # Every child's lines carry its name.
    assert "api          | " in log and "traefik      | " in log and "nginx        | " in log
    assert set(local_stack.services) == set(SERVICE_NAMES)


def test_sigterm_stops_every_child(local_stack_factory) -> None:
    stack = local_stack_factory()
    pids = every_pid(stack)
    assert len(pids) >= 5 and all(pid_alive(p) for p in pids)  # 4 services + nginx's worker
    stack.signal(signal.SIGTERM)
    assert stack.process.proc.wait(30) == 0
    assert wait_gone(pids, 5) == set()
    assert "all services stopped" in stack.log()
    assert not (stack.run_dir / "services.json").exists()


def test_ctrl_c_stops_every_child(local_stack_factory) -> None:
    stack = local_stack_factory()
    pids = every_pid(stack)
    stack.signal(signal.SIGINT)
    assert stack.process.proc.wait(30) == 0
    assert wait_gone(pids, 5) == set()


def test_a_killed_runner_leaves_no_orphans(local_stack_factory) -> None:
    """SIGKILL cannot be handled: the children still go (PR_SET_PDEATHSIG)."""
    stack = local_stack_factory()
    pids = every_pid(stack)
    stack.signal(signal.SIGKILL)
    stack.process.proc.wait(10)
    assert wait_gone(pids, 20) == set()


def test_a_dying_service_stops_the_stack(local_stack_factory) -> None:
    stack = local_stack_factory()
    pids = every_pid(stack)
    stack.stop_service("model-server")
    assert stack.process.proc.wait(30) == 1
    assert "model-server exited" in stack.log()
    assert wait_gone(pids, 5) == set()


@pytest.mark.parametrize("variable", ["PORT", "API_PORT", "UI_PORT"])
def test_a_taken_port_is_named(variable: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        env = {"PORT": str(free_port()), "RUN_DIR": str(tmp_path), variable: str(taken)}
        result = run_local_fails(env)
    assert result.returncode == 2
    assert f"port {taken}" in result.stderr and "already in use" in result.stderr
    assert variable in result.stderr
    assert not (tmp_path / "services.json").exists()  # nothing was started


def test_a_missing_model_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    result = run_local_fails({"PORT": str(free_port()), "MODEL_BASE_PATH": str(missing),
                              "RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == 2
    assert f"model path {missing / SEED_MODEL_NAME} does not exist" in result.stderr


def test_a_model_without_labels_is_named(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    result = run_local_fails({"PORT": str(free_port()), "MODEL_BASE_PATH": str(tmp_path),
                              "MODEL_NAME": "m", "RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == 2
    assert f"labels file {tmp_path / 'm' / 'labels.json'} does not exist" in result.stderr


def test_a_missing_dependency_is_named(tmp_path: Path) -> None:
    result = run_local_fails({"PORT": str(free_port()), "NGINX": str(tmp_path / "nginx"),
                              "RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == 2
    assert f"nginx not found at {tmp_path / 'nginx'}" in result.stderr
