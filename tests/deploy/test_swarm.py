"""deploy/swarm/stack.yml on a real three-node Swarm (scripts/swarm-lab): page and prediction
through Traefik on a node's host-mode port, per-replica balance, and zero failed requests under
steady load while a model container dies, the API rolls out a new image and a new model version
rolls out; last, a node is cut off. Figures are printed (pytest -s) and recorded in
docs/scale-out.md. Tests run in file order: each leaves the stack converged for the next."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.deploy.swarm_lab import (
    API_HOST,
    NODES,
    STACK,
    UI_HOST,
    Lab,
    LoadResult,
    SteadyLoad,
)
from tests.support.waiting import wait_until

# The first test also pays for the lab (images built, loaded into three nodes, stack up; the last,
# for its removal): far more than the suite's default timeout on a cold machine.
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(2400)]

RATE = 6.0  # requests per second: the issue asks for at least 5
PREDICT = "/predict/image"
# One Predict request carries a 1x150x150x3 float32 tensor.
TENSOR_BYTES = 150 * 150 * 3 * 4


def wait_for(condition: Callable[[], bool], timeout: float, what: str,
             interval: float = 2.0) -> float:
    """Seconds until `condition` holds (wait_until's polling), for the report."""
    started = time.monotonic()
    wait_until(condition, timeout, what, every=interval)
    return time.monotonic() - started


def converged(lab: Lab, *services: str) -> bool:
    for service in services:
        running, desired = lab.replicas(service)
        if running != desired or len(lab.containers(service)) != desired:
            return False
    return True


def report(name: str, result: LoadResult, lab: Lab) -> None:
    print(f"\n[swarm] {name}: {result.summary()}")
    if result.failures:  # the problem documents hide the gRPC status: the API's logs name it
        try:  # a diagnostic only: it must never fail the test (a cut-off node's logs hang)
            logs = lab.docker(1, "service", "logs", "--since", "10m", f"{STACK}_api",
                              check=False, timeout=15)
        except subprocess.TimeoutExpired:
            print("(the API's logs did not arrive within 15 s)")
            return
        print("\n".join(line for line in (logs.stdout + logs.stderr).splitlines()
                        if '"WARNING"' in line or '"ERROR"' in line)[-6000:])


@pytest.fixture
def photo(leaf_photo_paths: list[Path]) -> Path:
    return leaf_photo_paths[0]


def test_page_and_prediction_through_traefik_on_every_node(swarm_lab: Lab, photo: Path) -> None:
    for node in NODES:
        page = httpx.get(swarm_lab.url(node), headers={"Host": UI_HOST}, timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        reply = httpx.post(swarm_lab.url(node, PREDICT), headers={"Host": API_HOST}, timeout=30,
                           files={"image_to_predict": ("leaf.jpg", photo.read_bytes(),
                                                       "image/jpeg")})
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"]["version"] == 1


def test_replicas_spread_over_nodes(swarm_lab: Lab) -> None:
    for service in ("api", "model"):
        nodes = [node for node, _ in swarm_lab.containers(service)]
        assert len(nodes) >= 2 and len(set(nodes)) == len(nodes), (service, nodes)
    assert sorted(node for node, _ in swarm_lab.containers("traefik")) == list(NODES)


def within_quarter_of_even(counts: list[float]) -> bool:
    even = sum(counts) / len(counts)
    return all(abs(count - even) <= 0.25 * even for count in counts)


def test_balance_over_api_and_model_replicas(swarm_lab: Lab, photo: Path) -> None:
    models = swarm_lab.containers("model")
    apis = swarm_lab.containers("api")
    bytes_before = [swarm_lab.received_bytes(node, cid) for node, cid in models]
    api_before = [swarm_lab.api_requests(node, cid) for node, cid in apis]
    with SteadyLoad(swarm_lab.url(1, PREDICT), photo, rate=RATE, max_seconds=20,
                    client_ips=swarm_lab.client_ips()) as load:
        time.sleep(20)
    result = load.result()
    report("balance", result, swarm_lab)
    assert result.failures == []
    model_requests = [(swarm_lab.received_bytes(node, cid) - before) / TENSOR_BYTES
                      for (node, cid), before in zip(models, bytes_before, strict=True)]
    api_requests = [swarm_lab.api_requests(node, cid) - before
                    for (node, cid), before in zip(apis, api_before, strict=True)]
    print(f"[swarm] per-replica requests: API {api_requests}, "
          f"model (received bytes / tensor bytes) {[round(r) for r in model_requests]}")
    assert sum(api_requests) == result.sent
    assert within_quarter_of_even(api_requests), api_requests
    assert within_quarter_of_even(model_requests), model_requests


def test_killing_a_model_container_fails_no_request(swarm_lab: Lab, photo: Path) -> None:
    node, container = swarm_lab.containers("model")[0]
    with SteadyLoad(swarm_lab.url(1, PREDICT), photo, rate=RATE, max_seconds=90,
                    client_ips=swarm_lab.client_ips()) as load:
        time.sleep(5)
        swarm_lab.docker(node, "kill", container)
        took = wait_for(lambda: converged(swarm_lab, "model")
                        and container not in [c for _, c in swarm_lab.containers("model")],
                        timeout=80, what="replacement model container")
        time.sleep(3)
    result = load.result()
    report(f"model container killed (replaced in {took:.0f} s)", result, swarm_lab)
    # The kill happened under real traffic: at least a third of the rate asked (a loaded machine
    # slows the load generator, never by 3x); the point is that none of it failed.
    assert result.sent >= RATE / 3 * result.seconds, (result.sent, result.seconds)
    assert result.failures == []


def test_rolling_api_update_fails_no_request(swarm_lab: Lab, photo: Path) -> None:
    image = swarm_lab.docker(1, "service", "inspect", "--format",
                             "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                             "cassava_api").stdout.strip().split("@")[0]
    new_image = f"{image}-rollout"
    swarm_lab.tag_on_every_node(image, new_image)
    with SteadyLoad(swarm_lab.url(2, PREDICT), photo, rate=RATE, max_seconds=300,
                    client_ips=swarm_lab.client_ips()) as load:
        time.sleep(3)
        started = time.monotonic()
        swarm_lab.update(1, "api", "--image", new_image, timeout=290)
        took = time.monotonic() - started
        time.sleep(3)
    result = load.result()
    report(f"rolling API update ({took:.0f} s)", result, swarm_lab)
    images = {swarm_lab.docker(node, "inspect", "--format", "{{.Config.Image}}", cid).stdout
              .strip() for node, cid in swarm_lab.containers("api")}
    assert images == {new_image}
    assert result.failures == []


def test_new_model_version_rolls_out_with_no_failed_request(swarm_lab: Lab, photo: Path) -> None:
    image = swarm_lab.docker(1, "service", "inspect", "--format",
                             "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                             "cassava_model").stdout.strip().split("@")[0]
    new_image = f"{image}-v2"
    # The new version is a new image layer (the repository is baked in): version 2 = version 1's
    # files, which is enough to see which version answers. Built on each node from the loaded image.
    dockerfile = (f"FROM {image}\nUSER 0\nRUN cp -a /models/cassava/1 /models/cassava/2\n"
                  "USER 10002:10002\n")
    for node in NODES:
        swarm_lab.build(node, new_image, dockerfile)
    with SteadyLoad(swarm_lab.url(3, PREDICT), photo, rate=RATE, max_seconds=420,
                    client_ips=swarm_lab.client_ips()) as load:
        time.sleep(3)
        started = time.monotonic()
        swarm_lab.update(1, "model", "--image", new_image, timeout=400)
        took = time.monotonic() - started
        time.sleep(5)
    result = load.result()
    report(f"new model version ({took:.0f} s)", result, swarm_lab)
    assert result.failures == []
    assert result.versions[2] > 0
    late = httpx.post(swarm_lab.url(1, PREDICT), headers={"Host": API_HOST}, timeout=30,
                      files={"image_to_predict": ("leaf.jpg", photo.read_bytes(), "image/jpeg")})
    assert late.json()["model"]["version"] == 2


def test_node_cut_off_replicas_return_within_120_s(swarm_lab: Lab, photo: Path) -> None:
    apis = {node for node, _ in swarm_lab.containers("api")}
    models = {node for node, _ in swarm_lab.containers("model")}
    both = sorted(apis & models)
    assert both, f"no node runs both an API and a model replica: {apis}, {models}"
    victim = both[0]
    entry = next(node for node in NODES if node != victim)
    survivors = tuple(node for node in NODES if node != victim)
    with SteadyLoad(swarm_lab.url(entry, PREDICT), photo, rate=RATE, max_seconds=180,
                    client_ips=swarm_lab.client_ips()) as load:
        time.sleep(5)
        swarm_lab.cut_off(victim)

        def back() -> bool:
            return all(len(swarm_lab.containers(service, survivors)) >= 2
                       for service in ("api", "model"))

        took = wait_for(back, timeout=120, what="replicas back on the surviving nodes")
        time.sleep(10)
    result = load.result()
    report(f"node {victim} cut off (replicas back in {took:.0f} s)", result, swarm_lab)
    # Recorded in docs/scale-out.md; bounded: calls that were in flight on the lost node, and
    # calls routed to it before Traefik's health check and gRPC noticed.
    assert len(result.failures) <= 0.1 * result.sent, result.failures
