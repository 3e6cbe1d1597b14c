"""deploy/kubernetes's edge limits acting in a real Traefik: the rendered production overlay's
Ingress objects, translated the way Traefik's Ingress provider reads them (host + path prefix,
the router.middlewares annotation), with the `traefik-middlewares` ConfigMap as the file
provider, in front of a slow upstream on 127.0.0.1. Per-client rate and in-flight limits on the
prediction paths, none on the others, and the cap on uploads in progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml

from tests.deploy.kube import KUBERNETES_DIR, by_kind, documents, install_tools, render
from tests.support.paths import REPO_ROOT
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.servers]

API_HOST = "api.service.localhost"
UI_HOST = "ui.service.localhost"
UPSTREAM_SLEEP_HEADER = "X-Test-Sleep"


class SlowUpstream(BaseHTTPRequestHandler):
    """The API's stand-in: reads the body, sleeps as the request asks, answers 200."""

    sleeping = 0  # requests in their sleep right now
    lock = threading.Lock()

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with SlowUpstream.lock:
            SlowUpstream.sleeping += 1
        try:
            time.sleep(float(self.headers.get(UPSTREAM_SLEEP_HEADER) or 0))
        finally:
            with SlowUpstream.lock:
                SlowUpstream.sleeping -= 1
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # quiet
        pass


class UpstreamServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs of a burst of 32 (retried after 1 s)
    daemon_threads = True


def ingress_routers(ingresses: dict[str, dict], service: str) -> dict[str, dict]:
    """What Traefik's Kubernetes Ingress provider builds from plain Ingress objects."""
    routers = {}
    for name, ingress in ingresses.items():
        annotations = ingress["metadata"].get("annotations", {})
        middlewares = [m for m in annotations.get(
            "traefik.ingress.kubernetes.io/router.middlewares", "").split(",") if m]
        for rule in ingress["spec"]["rules"]:
            for index, path in enumerate(rule["http"]["paths"]):
                assert path["pathType"] == "Prefix"
                routers[f"{name}-{index}"] = {
                    "rule": f"Host(`{rule['host']}`) && PathPrefix(`{path['path']}`)",
                    "entryPoints": annotations["traefik.ingress.kubernetes.io/router.entrypoints"]
                    .split(","),
                    "middlewares": middlewares, "service": service}
    return routers


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    install_tools()
    docs = documents(render(KUBERNETES_DIR / "overlays" / "production"))
    work = tmp_path_factory.mktemp("k8s-edge")
    upstream = UpstreamServer(("127.0.0.1", 0), SlowUpstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    config = work / "dynamic"
    config.mkdir()
    (config / "cassava-middlewares.yml").write_text(
        by_kind(docs, "ConfigMap")["traefik-middlewares"]["data"]["cassava-middlewares.yml"])
    (config / "ingress.yml").write_text(yaml.safe_dump({"http": {
        "routers": ingress_routers(by_kind(docs, "Ingress"), "upstream"),
        "services": {"upstream": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{upstream.server_port}"}]}}}}}))
    port, ping = free_port(), free_port()
    # The Ingress objects' one entry point (production: websecure; TLS is not what this tests).
    routers = ingress_routers(by_kind(docs, "Ingress"), "upstream")
    (entry_point,) = {name for router in routers.values() for name in router["entryPoints"]}
    traefik = ManagedProcess("traefik", [
        REPO_ROOT / ".venv" / "bin" / "traefik",
        f"--entryPoints.{entry_point}.address=127.0.0.1:{port}",
        f"--entryPoints.ping.address=127.0.0.1:{ping}", "--ping.entryPoint=ping",
        f"--providers.file.directory={config}", "--log.level=ERROR"], work)
    url = f"http://127.0.0.1:{port}"
    try:
        traefik.wait_until(lambda: httpx.get(f"{url}/healthz", headers={"Host": API_HOST},
                                             timeout=2).status_code == 200,
                           timeout=30, what="Traefik routing the API host")
        assert "error" not in traefik.log().lower(), traefik.log()
        yield url
    finally:
        traefik.stop()
        upstream.shutdown()
        upstream.server_close()


def post(url: str, path: str, *, source: str = "127.0.0.1", sleep: float = 0.0,
         host: str = API_HOST) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        return client.post(f"{url}{path}", content=b"x" * 1000, headers={
            "Host": host, UPSTREAM_SLEEP_HEADER: str(sleep)}).status_code


def concurrently(calls: list) -> list[int]:
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]


def test_a_fifth_prediction_in_progress_from_one_address_gets_429(edge: str) -> None:
    def slow(source: str) -> int:
        return post(edge, "/predict/image", source=source, sleep=2)

    def late(source: str) -> int:
        wait_until(lambda: SlowUpstream.sleeping >= 4, 10, "four slow requests in progress")
        return post(edge, "/predict/image", source=source)

    statuses = concurrently([lambda: slow("127.0.0.11")] * 4 + [lambda: late("127.0.0.11"),
                                                                lambda: late("127.0.0.12")])
    assert statuses == [200, 200, 200, 200, 429, 200]


@pytest.mark.parametrize(("host", "path"), [(API_HOST, "/v1/predict/image"),
                                            (UI_HOST, "/api/predict/image")])
def test_a_flood_from_one_address_is_rate_limited_but_others_are_served(
        edge: str, host: str, path: str) -> None:
    source = "127.0.0.21" if host == API_HOST else "127.0.0.22"
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30, headers={"Host": host}) as client:
        started = time.monotonic()
        statuses = [client.post(f"{edge}{path}", content=b"x" * 1000).status_code
                    for _ in range(60)]
        elapsed = time.monotonic() - started
    # A burst of 20, then 10/s: 60 back-to-back requests cannot all pass.
    assert statuses[:15] == [200] * 15
    assert set(statuses) == {200, 429}
    assert statuses.count(200) <= 20 + 10 * elapsed + 1, (elapsed, statuses)
    assert post(edge, path, source="127.0.0.23", host=host) == 200


def test_other_paths_are_not_limited(edge: str) -> None:
    statuses = [post(edge, "/model", source="127.0.0.31") for _ in range(40)]
    assert statuses == [200] * 40


def test_uploads_in_progress_are_capped_for_all_clients_together(edge: str) -> None:
    # 32 slow uploads from 32 addresses (each within its own limits) fill the slots.
    def slow(index: int) -> int:
        return post(edge, "/predict/image", source=f"127.0.1.{index}", sleep=3)

    def late() -> int:
        wait_until(lambda: SlowUpstream.sleeping >= 32, 10, "32 slow uploads in progress")
        return post(edge, "/predict/image", source="127.0.2.1")

    statuses = concurrently([lambda i=i: slow(i) for i in range(1, 33)] + [late])
    assert statuses[:32] == [200] * 32
    assert statuses[32] == 429
    assert post(edge, "/predict/image", source="127.0.2.1") == 200  # slots free again
