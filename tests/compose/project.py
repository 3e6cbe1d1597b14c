"""Drive one docker compose project of docker-compose.yml for tests: its own name, port and env
file (never the developer's .env), requests through Traefik on 127.0.0.1 with Host headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# HTTPS on a real domain (docs/tls.md): the overlay given after COMPOSE_FILE.
HTTPS_COMPOSE_FILE = REPO_ROOT / "docker-compose.https.yml"
OFFLINE_ENV = REPO_ROOT / "docker" / "offline" / "offline.env"
UI_HOST = "ui.service.localhost"
API_HOST = "api.service.localhost"
SERVICES = ("traefik", "ui.service", "api.service", "model.service")


def compose_command() -> list[str]:
    """`docker compose` (the CLI plugin), or the standalone Compose v2 binary from .venv."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    return [str(REPO_ROOT / ".venv" / "bin" / "docker-compose")]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file (comments and blanks skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def run(argv: list[str], timeout: float = 120, check: bool = True,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                            **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def docker_inspect(object_id: str) -> dict[str, Any]:
    return json.loads(run(["docker", "inspect", object_id]).stdout)[0]


@dataclass
class ComposeProject:
    """One project: `compose(...)` runs docker compose with its name and env file."""

    name: str
    env_file: Path
    port: int
    profiles: tuple[str, ...] = ()  # compose profiles enabled on every command
    overrides: tuple[Path, ...] = ()  # compose files merged over docker-compose.yml

    def compose(self, *args: str, timeout: float = 120,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*compose_command(), "--project-name", self.name, "--file", str(COMPOSE_FILE),
                *(option for path in self.overrides for option in ("--file", str(path))),
                "--env-file", str(self.env_file),
                *(option for profile in self.profiles for option in ("--profile", profile)),
                *args]
        # The env file is the whole configuration: the caller's environment must not leak in.
        env = {k: v for k, v in os.environ.items()
               if k not in read_env_file(self.env_file) and not k.startswith("COMPOSE_")}
        return run(argv, timeout=timeout, check=check, env=env)

    def container_id(self, service: str) -> str:
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, got {ids}"
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        return docker_inspect(self.container_id(service))

    def exec(self, service: str, *argv: str,
             check: bool = False) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *argv, check=check)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def client(self, host: str, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client to Traefik on 127.0.0.1 that sends `Host: host`."""
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers={"Host": host},
                            timeout=timeout)

    def logs(self, *services: str, tail: int = 200) -> str:
        result = self.compose("logs", "--no-color", "--tail", str(tail), *services, check=False)
        return result.stdout + result.stderr
