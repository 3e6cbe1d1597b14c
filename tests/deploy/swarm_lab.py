"""Drive scripts/swarm-lab for tests: the nodes, the stack's containers, cutting a node off, and a
steady, bounded load sent to a node's Traefik (only to the lab's own namespaced hosts)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.paths import SCRIPTS_DIR

SWARM_LAB = SCRIPTS_DIR / "swarm-lab"
STACK = "cassava"
API_HOST = "api.service.localhost"
UI_HOST = "ui.service.localhost"
NODES = (1, 2, 3)


def run(argv: list[str], timeout: float = 120, check: bool = True,
        env: dict[str, str] | None = None, stdin: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                            env=env, input=stdin)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass
class Lab:
    """One lab made by scripts/swarm-lab, described by `scripts/swarm-lab env`."""

    env: dict[str, str]  # the environment scripts/swarm-lab runs with (its state dir etc.)
    facts: dict[str, str] = field(default_factory=dict)
    http_port: int = 80

    def script(self, *args: str, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(SWARM_LAB), *args], timeout=timeout, check=check, env=self.env)

    def load_facts(self) -> None:
        output = self.script("env").stdout
        self.facts = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def ip(self, node: int) -> str:
        return self.facts[f"SWARM_LAB_NODE{node}_IP"]

    def docker(self, node: int, *args: str, timeout: float = 120, check: bool = True,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        sock = self.facts[f"SWARM_LAB_NODE{node}_SOCK"]
        return run(["docker", "-H", f"unix://{sock}", *args], timeout=timeout, check=check,
                   stdin=stdin)

    def build(self, node: int, tag: str, dockerfile: str) -> None:
        """Build a context-free Dockerfile on a node (classic builder: no buildx there)."""
        sock = self.facts[f"SWARM_LAB_NODE{node}_SOCK"]
        run(["docker", "-H", f"unix://{sock}", "build", "-q", "-t", tag, "-"], stdin=dockerfile,
            timeout=300, env={**os.environ, "DOCKER_BUILDKIT": "0"})

    def client_ips(self) -> list[str]:
        """This host's addresses on the lab's switch: simulated clients spread over them."""
        return self.facts["SWARM_LAB_CLIENT_IPS"].split(",")

    def url(self, node: int, path: str = "/") -> str:
        return f"http://{self.ip(node)}:{self.http_port}{path}"

    def containers(self, service: str, nodes: tuple[int, ...] = NODES) -> list[tuple[int, str]]:
        """(node, container id) of the running tasks of `service` (short name, e.g. api)."""
        found = []
        for node in nodes:
            ids = self.docker(node, "ps", "-q", "--filter",
                              f"label=com.docker.swarm.service.name={STACK}_{service}").stdout
            found += [(node, cid) for cid in ids.split()]
        return found

    def replicas(self, service: str) -> tuple[int, int]:
        """(running, desired) as `docker service ls` reports them."""
        for node in NODES:
            result = self.docker(node, "service", "ls", "--format", "{{.Name}} {{.Replicas}}",
                                 check=False, timeout=20)
            if result.returncode == 0:
                for line in result.stdout.splitlines():
                    name, replicas = line.split()[:2]
                    if name == f"{STACK}_{service}":
                        running, desired = replicas.split("/")
                        return int(running), int(desired)
        raise RuntimeError(f"no manager answers for {service}")

    def cut_off(self, node: int) -> None:
        """Unplug the node's cable from the switch: no FIN, no RST, just silence."""
        switch = f"csl-{self.facts['SWARM_LAB_ID']}-sw"
        run(["ip", "-n", switch, "link", "set", f"csl{self.facts['SWARM_LAB_ID']}n{node}", "down"])

    def update(self, node: int, service: str, *args: str, timeout: float = 600) -> None:
        """`docker service update` (waits until the update converged or rolled back)."""
        self.docker(node, "service", "update", "--detach=false", "--no-resolve-image", *args,
                    f"{STACK}_{service}", timeout=timeout)

    def tag_on_every_node(self, source: str, target: str) -> None:
        for node in NODES:
            self.docker(node, "tag", source, target)

    def received_bytes(self, node: int, container: str) -> int:
        """Bytes the container received on its non-loopback interfaces (/proc/net/dev)."""
        text = self.docker(node, "exec", container, "cat", "/proc/net/dev").stdout
        total = 0
        for line in text.splitlines()[2:]:
            name, values = line.split(":", 1)
            if name.strip() != "lo":
                total += int(values.split()[0])
        return total

    def api_requests(self, node: int, container: str) -> int:
        """Prediction requests the API container answered (uvicorn's access log)."""
        result = self.docker(node, "logs", container, check=False)
        return (result.stdout + result.stderr).count("POST /predict/image")


@dataclass
class LoadResult:
    statuses: Counter[str]
    failures: list[str]
    sent: int
    seconds: float
    versions: Counter[int]

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"{self.sent} requests in {self.seconds:.0f} s ({self.rate:.1f}/s), statuses "
                f"{dict(self.statuses)}, model versions {dict(self.versions)}, "
                f"failures {len(self.failures)}: {self.failures[:5]}")


class SteadyLoad:
    """Predictions at `rate` per second to one node's Traefik until stopped; bounded both in
    count (`max_requests`) and in time (`max_seconds`). Each request has its own outcome."""

    def __init__(self, url: str, photo: Path, rate: float = 6.0, max_seconds: float = 300,
                 workers: int = 16, timeout: float = 30.0,
                 client_ips: list[str] | None = None) -> None:
        self.url = url
        # Each worker is one simulated client with its own source address (the proxy's limits
        # act per address), taken in turn from client_ips.
        self.client_ips = client_ips or []
        self.photo = photo.read_bytes()
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.max_requests = int(rate * max_seconds)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="load")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._statuses: Counter[str] = Counter()
        self._versions: Counter[int] = Counter()
        self._failures: list[str] = []
        self._sent = 0
        self._local = threading.local()
        self._clients: list[httpx.Client] = []  # one per worker thread, closed in stop()
        self._thread = threading.Thread(target=self._schedule, name="load-schedule", daemon=True)
        self._started = 0.0
        self._seconds = 0.0

    def __enter__(self) -> SteadyLoad:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                address = (self.client_ips[len(self._clients) % len(self.client_ips)]
                           if self.client_ips else None)
                transport = httpx.HTTPTransport(local_address=address) if address else None
                client = httpx.Client(timeout=self.timeout, headers={"Host": API_HOST},
                                      transport=transport)
                self._clients.append(client)
            self._local.client = client
        return client

    def _schedule(self) -> None:
        next_at = time.monotonic()
        while (not self._stop.is_set() and self._sent < self.max_requests
               and time.monotonic() - self._started < self.max_seconds):
            self._pool.submit(self._one)
            self._sent += 1
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self) -> None:
        started = time.monotonic() - self._started
        try:
            response = self._client().post(
                self.url, files={"image_to_predict": ("leaf.jpg", self.photo, "image/jpeg")})
            outcome = str(response.status_code)
            version = response.json()["model"]["version"] if response.status_code == 200 \
                else None
            detail = "" if response.status_code == 200 else response.text[:200]
        except httpx.HTTPError as error:
            outcome, version, detail = type(error).__name__, None, str(error)[:200]
        with self._lock:
            self._statuses[outcome] += 1
            if isinstance(version, int):
                self._versions[version] += 1
            if outcome != "200":
                self._failures.append(f"t={started:.1f}s {outcome} {detail}")

    def stop(self) -> LoadResult:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._pool.shutdown(wait=True)
            self._seconds = time.monotonic() - self._started
            for client in self._clients:
                client.close()
        with self._lock:
            return LoadResult(Counter(self._statuses), list(self._failures), self._sent,
                              self._seconds, Counter(self._versions))

    def result(self) -> LoadResult:
        return self.stop()
