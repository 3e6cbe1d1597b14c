"""The compose stack, built on the offline stand-in bases and run for real: routes through Traefik,
hardening as the engine sees it, model outage and recovery, a model rollout, and quick stops.

One stack for the module (`stack` fixture); the tests run in file order and the last one stops
every service."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compose.project import API_HOST, SERVICES, UI_HOST, ComposeProject, run
from tests.support.paths import SCRIPTS_DIR, SEED_MODEL_H5
from tests.support.sockets import read_until_closed
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CLASSES = {"CBB", "CBSD", "CGM", "CMD", "Healthy"}


def predict(client: httpx.Client, path: str, photo: Path) -> httpx.Response:
    with photo.open("rb") as image:
        return client.post(path, files={"image_to_predict": (photo.name, image, "image/jpeg")})


def assert_prediction(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] in CLASSES
    assert {p["code"] for p in body["probabilities"]} == CLASSES
    assert body["model"]["name"] == "cassava"
    return body


def model_repository(stack: ComposeProject) -> Path:
    mounts = stack.inspect("model.service")["Mounts"]
    (mount,) = [m for m in mounts if m["Destination"] == "/models"]
    assert mount["RW"] is False
    return Path(mount["Source"])


def newest_version(model_dir: Path) -> int:
    return max(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())


def test_all_services_healthy(stack: ComposeProject) -> None:
    for service in SERVICES:
        state = stack.inspect(service)["State"]
        assert state["Running"] and state["Health"]["Status"] == "healthy", (service, state)


def test_page_through_the_ui_host(stack: ComposeProject) -> None:
    with stack.client(UI_HOST) as client:
        page = client.get("/")
        script = client.get("/app.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<html" in page.text.lower()
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


@pytest.mark.parametrize(("host", "path"), [(UI_HOST, "/api/predict/image"),
                                            (API_HOST, "/predict/image")])
def test_prediction_through_both_hosts(stack: ComposeProject, leaf_photo_paths: list[Path],
                                       host: str, path: str) -> None:
    served = newest_version(model_repository(stack) / "cassava")
    with stack.client(host) as client:
        for photo in leaf_photo_paths:
            body = assert_prediction(predict(client, path, photo))
            assert body["model"]["version"] == served


def test_upload_cap_at_the_proxy(stack: ComposeProject) -> None:
    too_big = b"\xff\xd8" + b"\0" * (10 * 1024 * 1024)
    with stack.client(API_HOST) as client:
        response = client.post("/predict/image",
                               files={"image_to_predict": ("big.jpg", too_big, "image/jpeg")})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "body_too_large"


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes to Traefik and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_until_closed(sock, 10)


def test_the_edge_settings_of_run_local_hold_in_compose(stack: ComposeProject) -> None:
    """The image reads the traefik/traefik.yml run-local renders (docs/edge.md): no cleartext
    HTTP/2, the header cap, a malformed chunked body answered 400, /docs with its own CSP."""
    h2c = raw_exchange(stack.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                       + bytes.fromhex("000000040000000000"))
    assert h2c.startswith(b"HTTP/1.1 "), h2c[:40]
    chunked = raw_exchange(stack.port, (
        f"POST /predict/image HTTP/1.1\r\nHost: {API_HOST}\r\nTransfer-Encoding: chunked\r\n"
        "Content-Type: image/jpeg\r\nConnection: close\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").encode())
    assert chunked.startswith(b"HTTP/1.1 400 ") and b'"code":"malformed_request"' in chunked
    with stack.client(API_HOST) as client:
        assert client.get("/readyz", headers={"X-Filler": "a" * 20000}).status_code == 431
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "script-src 'self'" in docs.headers["content-security-policy"]
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_cors_allows_only_the_page_origin(stack: ComposeProject) -> None:
    """UI_ORIGINS' default follows HTTP_PORT: the page's own origin may call the API host."""
    page_origin = f"http://{UI_HOST}:{stack.port}"
    with stack.client(API_HOST) as client:
        allowed = client.get("/healthz", headers={"Origin": page_origin})
        foreign = client.get("/healthz", headers={"Origin": "http://elsewhere.localhost"})
    assert allowed.headers.get("access-control-allow-origin") == page_origin
    assert "access-control-allow-origin" not in foreign.headers


def test_only_traefik_publishes_a_port_on_loopback(stack: ComposeProject) -> None:
    for service in SERVICES:
        bindings = stack.inspect(service)["HostConfig"]["PortBindings"] or {}
        if service == "traefik":
            assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1",
                                              "HostPort": str(stack.port)}]}
        else:
            assert bindings == {}, service


def test_model_network_is_internal_and_private_to_the_api(stack: ComposeProject) -> None:
    network = run(["docker", "network", "inspect", f"{stack.name}_model",
                   "--format", "{{.Internal}} {{range .Containers}}{{.Name}} {{end}}"]).stdout
    internal, *members = network.split()
    assert internal == "true"
    assert sorted(m.split("-")[-2] for m in members) == ["api.service", "model.service"]


@pytest.mark.parametrize("service", SERVICES)
def test_runs_as_non_root_on_a_read_only_root(stack: ComposeProject, service: str) -> None:
    info = stack.inspect(service)
    assert info["Config"]["User"].split(":")[0] not in ("", "0", "root")
    uid = stack.exec(service, "id", "-u", check=True).stdout.strip()
    assert uid.isdigit() and int(uid) != 0
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0
    write = stack.exec(service, "sh", "-c", "echo x > /written-by-test")
    assert write.returncode != 0 and "read-only" in (write.stderr + write.stdout).lower()
    # The tmpfs is the one writable place.
    assert stack.exec(service, "sh", "-c", "echo x > /tmp/written-by-test").returncode == 0


def test_api_image_has_no_tensorflow_and_no_compiler(stack: ComposeProject) -> None:
    probe = ("import importlib.util as u, shutil, sys; "
             "sys.exit(u.find_spec('tensorflow') is not None or "
             "any(shutil.which(c) for c in ('gcc', 'cc', 'g++', 'clang')))")
    assert stack.exec("api.service", "python", "-c", probe).returncode == 0


def test_model_outage_gives_503_and_recovers_without_api_restart(
        stack: ComposeProject, leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0]
    api_before = stack.inspect("api.service")
    model_restarts = stack.inspect("model.service")["RestartCount"]

    with stack.client(API_HOST) as client:
        # An operator's kill: the model stays down, the API answers problem documents.
        stack.compose("kill", "model.service")
        outage = wait_until(lambda: (r := predict(client, "/predict/image", photo))
                            .status_code == 503 and r, 30, "503 while the model is down")
        assert outage.headers["content-type"].startswith("application/problem+json")
        assert outage.json()["code"] == "model_unavailable" and "retry-after" in outage.headers
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        stack.compose("start", "model.service")
        wait_until(lambda: predict(client, "/predict/image", photo).status_code == 200, 180,
                   "prediction after docker compose start")

        # A crash (SIGKILL of the container's init from the host): the restart policy acts.
        os.kill(stack.inspect("model.service")["State"]["Pid"], signal.SIGKILL)
        wait_until(lambda: stack.inspect("model.service")["RestartCount"] > model_restarts, 60,
                   "restart of the crashed model container")
        wait_until(lambda: predict(client, "/predict/image", photo).status_code == 200, 180,
                   "prediction after the engine restarted the model")

    api_after = stack.inspect("api.service")
    assert api_after["State"]["StartedAt"] == api_before["State"]["StartedAt"]
    assert api_after["RestartCount"] == api_before["RestartCount"]


def roll_out_under_traffic(stack: ComposeProject, photos: list[Path], new_version: int,
                           publish: Callable[[], None]) -> None:
    """Predictions in a loop through Traefik while `publish()` adds `new_version`: every
    request answered, and once the new version answers, no old one again."""
    results: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def client_loop() -> None:
        with stack.client(API_HOST) as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                response = predict(client, "/predict/image", photos[i % len(photos)])
                version = response.json().get("model", {}).get("version") \
                    if response.status_code == 200 else None
                results.append((response.status_code, version))
                # A steady client under the proxy's per-client rate limit (10/s, docs/edge.md):
                # behind Docker's published port every test client is the same address.
                time.sleep(0.15)

    thread = threading.Thread(target=client_loop, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(results) >= 5, 60, "first replies")
        publish()
        wait_until(lambda: any(v == new_version for _, v in results), 120,
                   f"a reply from version {new_version}")
        seen = len(results)
        wait_until(lambda: len(results) >= seen + 10, 60, "more replies after the switch")
    finally:
        stop.set()
        thread.join(60)
    failures = [r for r in results if r[0] != 200]
    assert not failures, f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    switched = [v for _, v in results].index(new_version)
    assert all(v == new_version for _, v in results[switched:]), "served an old version again"


def test_new_model_version_is_served_with_no_failed_request(
        stack: ComposeProject, leaf_photo_paths: list[Path]) -> None:
    model_dir = model_repository(stack) / "cassava"
    newest = newest_version(model_dir)

    def publish() -> None:
        # Atomically, as scripts/convert-model does: build beside, then rename into place.
        staging = model_dir / f".staging-{newest + 1}"
        shutil.copytree(model_dir / str(newest), staging)
        staging.rename(model_dir / str(newest + 1))

    roll_out_under_traffic(stack, leaf_photo_paths, newest + 1, publish)


def test_get_model_into_the_mounted_repository(stack: ComposeProject,
                                               leaf_photo_paths: list[Path]) -> None:
    """The README's compose path: scripts/get-model on the host, against the repository the
    stack mounts; the article's model (other signature keys than the demo) takes over under
    traffic with no failed request, and /v1/model says it is no demo."""
    model_dir = model_repository(stack) / "cassava"
    new_version = newest_version(model_dir) + 1

    def publish() -> None:
        result = subprocess.run(
            [SCRIPTS_DIR / "get-model", "article", "--file", SEED_MODEL_H5,
             "--repository", model_dir.parent], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    roll_out_under_traffic(stack, leaf_photo_paths, new_version, publish)
    with stack.client(API_HOST) as client:
        body = client.get("/v1/model").json()
    assert (body["version"], body["demo"], body["card"]["licence"]) == (new_version, False, "MIT")


def test_stop_is_quick_for_every_service(stack: ComposeProject) -> None:
    """SIGTERM reaches the process that serves (uvicorn, tensorflow_model_server, nginx gets
    SIGQUIT, Traefik): each stops by itself before compose's SIGKILL (stop_grace_period), which
    the exit codes show (0, not 137). The durations are printed, not asserted: a loaded machine
    stretches them (Traefik once took 13 s at load 22, docs/tests.md)."""
    durations = {}
    for service in SERVICES:  # Traefik first, the model last: no request hits a stopped hop
        started = time.monotonic()
        stack.compose("stop", service)
        durations[service] = time.monotonic() - started
        assert stack.inspect(service)["State"]["Running"] is False
    print(f"docker compose stop durations: {durations}")
    # The server itself got SIGTERM and finished its own shutdown (not killed with its shell).
    model_log = stack.logs("model.service", tail=20)
    assert "Received SIGTERM" in model_log and "Server stopped." in model_log, model_log
    for service in SERVICES:  # 137 would be compose's SIGKILL after the grace period
        state = stack.inspect(service)["State"]
        assert (state["ExitCode"], state["OOMKilled"]) == (0, False), (service, state)
