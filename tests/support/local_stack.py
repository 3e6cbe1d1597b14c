"""Run scripts/run-local (the whole no-Docker stack) for tests, and talk to it through Traefik.

Every request goes to 127.0.0.1 with an explicit Host header, so no name resolution is needed;
browsers (Chromium resolves *.localhost to 127.0.0.1) can use `stack.url(host, path)` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import SCRIPTS_DIR, SEED_MODEL_BASE_PATH, SEED_MODEL_NAME
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.waiting import wait_until

UI_HOST = "ui.service.localhost"
API_HOST = "api.service.localhost"
SERVICE_NAMES = ("model-server", "api", "nginx", "traefik")


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def process_group_members(pgid: int) -> list[int]:
    """Live pids whose process group is pgid (a child's grandchildren, e.g. nginx workers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@dataclass
class LocalStack:
    """A running scripts/run-local: its port, its children's pids, helpers to send requests."""

    process: ManagedProcess
    port: int
    run_dir: Path
    env: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)

    # -- addresses and requests ----------------------------------------------------------------
    def url(self, host: str, path: str = "/") -> str:
        """The URL a browser opens (host resolved to 127.0.0.1 by Chromium)."""
        return f"http://{host}:{self.port}{path}"

    def request(self, method: str, host: str, path: str = "/", *,
                headers: Mapping[str, str] | None = None, timeout: float = 60.0,
                **kwargs: Any) -> httpx.Response:
        """One request to Traefik on 127.0.0.1 with `Host: host`."""
        return httpx.request(method, f"http://127.0.0.1:{self.port}{path}",
                             headers={"Host": host, **(headers or {})}, timeout=timeout,
                             **kwargs)

    def get(self, host: str, path: str = "/", **kwargs: Any) -> httpx.Response:
        return self.request("GET", host, path, **kwargs)

    def post(self, host: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", host, path, **kwargs)

    def predict(self, host: str, path: str, photo: Path | bytes,
                content_type: str = "image/jpeg", **kwargs: Any) -> httpx.Response:
        """POST a photo as multipart field image_to_predict."""
        data = photo if isinstance(photo, bytes) else photo.read_bytes()
        return self.post(host, path, files={"image_to_predict": ("leaf.jpg", data, content_type)},
                         **kwargs)

    # -- processes -----------------------------------------------------------------------------
    @property
    def services(self) -> dict[str, int]:
        """Service name -> pid of its main process (as the runner started it)."""
        return {name: info["pid"] for name, info in self.state["services"].items()}

    def service_ports(self, name: str) -> dict[str, int]:
        return dict(self.state["services"][name]["ports"])

    def alive(self) -> bool:
        return self.process.alive()

    def log(self) -> str:
        return self.process.log()

    def stop_service(self, name: str, signum: int = signal.SIGKILL, timeout: float = 15) -> None:
        """Kill one child (and its process group), e.g. the API for "dependency down" tests.
        Start the stack with keep_going=True, or the runner stops everything when a child dies."""
        pid = self.services[name]
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), timeout, f"end of {name} (pid {pid}) after {signum}",
                   every=0.05)

    def pause_service(self, name: str) -> None:
        """SIGSTOP a child: it stays bound to its port but answers nothing (a hung service)."""
        os.killpg(self.services[name], signal.SIGSTOP)

    def resume_service(self, name: str) -> None:
        os.killpg(self.services[name], signal.SIGCONT)

    def signal(self, signum: int) -> None:
        self.process.signal(signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM to the runner (it stops its children); SIGKILL everything if it lingers."""
        returncode = self.process.stop(timeout)
        for pid in self.services.values() if self.state else ():
            if pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)  # in case the runner failed to: no orphans
        return returncode


def start_local_stack(log_dir: Path, *, port: int | None = None,
                      model_base_path: Path = SEED_MODEL_BASE_PATH.parent,
                      model_name: str = SEED_MODEL_NAME, keep_going: bool = False,
                      env: Mapping[str, str] | None = None, wait: bool = True,
                      timeout: float = 300.0) -> LocalStack:
    """Start scripts/run-local on a free port (internal ports free too) and wait until it says
    every service is ready. Defaults to the article's model (../shared), always present."""
    port = port or free_port()
    run_dir = log_dir / f"run-local-{port}"
    full_env = {
        "PORT": str(port),
        "MODEL_BASE_PATH": str(model_base_path),
        "MODEL_NAME": model_name,
        "RUN_DIR": str(run_dir),
        "READY_TIMEOUT": str(int(timeout)),
        "NO_COLOR": "1",
        **({"RUN_LOCAL_KEEP_GOING": "1"} if keep_going else {}),
        **(env or {}),
    }
    runner = ManagedProcess(f"run-local-{port}", [SCRIPTS_DIR / "run-local"], log_dir, full_env)
    stack = LocalStack(runner, port, run_dir, full_env)
    if wait:
        try:
            wait_until_ready(stack, timeout + 30)
        except Exception:
            stack.stop()
            raise
    return stack


def wait_until_ready(stack: LocalStack, timeout: float) -> None:
    """Poll the runner's state file until it reports ready; fail with its log if it exits."""
    state_file = stack.run_dir / "services.json"

    def ready() -> bool:
        if state_file.is_file():
            with contextlib.suppress(json.JSONDecodeError):  # being replaced right now
                stack.state = json.loads(state_file.read_text())
        return bool(stack.state.get("ready"))

    def exited() -> str | None:
        if stack.alive():
            return None
        return f"run-local exited ({stack.process.proc.returncode}):\n{stack.log()[-6000:]}"

    try:
        wait_until(ready, timeout, "ready stack", gave_up=exited)
    except TimeoutError as error:
        raise TimeoutError(f"{error}:\n{stack.log()[-6000:]}") from None
