"""The compose profile `monitoring`, run for real on the offline bases: Prometheus (the Debian
stand-in of prom/prometheus) scrapes the API, the model server (TF Serving's
--monitoring_config_file endpoint) and Traefik (its unpublished metrics entry point) over the
internal networks; every target is up, the dashboard's queries return data, /metrics stays off
the public hosts, and one request id shows in the three services' JSON logs.

Grafana is not built here (no Grafana package or image can be had offline): the dashboard JSON is
tested by running its queries against this real Prometheus."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compose.conftest import running_stack
from tests.compose.project import API_HOST, UI_HOST, ComposeProject
from tests.compose.test_config import PROFILE_DOCKERFILES, dockerfile_base
from tests.support.paths import REPO_ROOT
from tests.support.prometheus import queries_without_data
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DASHBOARD = REPO_ROOT / "monitoring" / "grafana" / "dashboards" / "cassava-stack.json"
JOBS = {"api", "model-server", "traefik"}
# The API container has Python and shares the `api` network with Prometheus: it asks
# Prometheus's HTTP API (nothing publishes Prometheus's port).
QUERY = """
import json, sys, urllib.parse, urllib.request
url = "http://prometheus:9090/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[1]})
print(json.dumps(json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]))
"""


@pytest.fixture(scope="module")
def monitored(offline_bases: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
              artifacts_dir: Path) -> Iterator[ComposeProject]:
    with running_stack(offline_bases, tmp_path_factory.mktemp("compose-monitoring"),
                       artifacts_dir / "compose-monitoring.log",
                       profiles=("monitoring",)) as project:
        yield project


def query(stack: ComposeProject, promql: str) -> list[dict[str, Any]]:
    result = stack.exec("api.service", "python", "-c", QUERY, promql, check=True)
    return json.loads(result.stdout)


def predict(stack: ComposeProject, photo: Path, **headers: str):
    with stack.client(API_HOST) as client:
        return client.post("/predict/image", headers=headers,
                           files={"image_to_predict": (photo.name, photo.read_bytes())})


def test_the_prometheus_image_defaults_to_the_pinned_official_one() -> None:
    path, variable = PROFILE_DOCKERFILES["prometheus"]
    name, default, last_from = dockerfile_base(REPO_ROOT / path)
    assert (name, last_from) == (variable, f"${{{variable}}}")
    assert default.startswith("prom/prometheus:v2.") and "latest" not in default


def test_prometheus_is_hardened_and_unpublished(monitored: ComposeProject) -> None:
    info = monitored.inspect("prometheus")
    assert info["State"]["Health"]["Status"] == "healthy"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["Config"]["User"].split(":")[0] not in ("", "0", "root")
    published = info["NetworkSettings"]["Ports"] or {}
    assert not any(published.values()), published


def test_metrics_are_not_routed_from_the_public_hosts(monitored: ComposeProject) -> None:
    for host, path in ((API_HOST, "/metrics"), (UI_HOST, "/api/metrics"), (UI_HOST, "/metrics")):
        with monitored.client(host) as client:
            reply = client.get(path)
        assert reply.status_code == 404, (host, path)
        assert "cassava_api" not in reply.text


def test_one_request_id_in_the_three_json_logs(monitored: ComposeProject,
                                               leaf_photo_paths: list[Path]) -> None:
    sent = f"compose-{uuid.uuid4().hex[:12]}"
    reply = predict(monitored, leaf_photo_paths[0], **{"X-Request-ID": sent})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == sent
    for service in ("traefik", "api.service", "model.service"):
        wait_until(lambda service=service: sent in monitored.logs(service, tail=400), 15,
                   f"{service} log line with {sent}", every=0.5)
        lines = [line.split("| ", 1)[-1] for line in monitored.logs(service, tail=400).splitlines()
                 if sent in line]
        assert lines, f"{service} logged no line with {sent}"
        assert all(json.loads(line) for line in lines)  # JSON objects, one per line


def test_every_target_up_and_the_dashboard_has_data(monitored: ComposeProject,
                                                    leaf_photo_paths: list[Path]) -> None:
    for photo in leaf_photo_paths[:3]:
        assert predict(monitored, photo).status_code == 200
    with monitored.client(API_HOST) as client:  # one rejected upload, for its panel
        assert client.post("/predict/image", files={"image_to_predict": ("e.jpg", b"")}
                           ).json()["code"] == "empty_image"
    # Poll until every dashboard query has data (each target scraped twice since the traffic;
    # their scrape offsets differ within the interval), then assert.
    queries = [(panel["title"], target["expr"].replace("$__rate_interval", "1m"))
               for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"]]
    empty = queries_without_data(queries, lambda promql: query(monitored, promql), 90, every=3)
    up = {s["metric"]["job"]: s["value"][1] for s in query(monitored, "up")}
    assert up == dict.fromkeys(JOBS, "1")
    # The model server's endpoint is TF Serving's, with TF Serving's metric names.
    assert query(monitored, ':tensorflow:serving:request_count{status="OK"}')
    assert query(monitored, ':tensorflow:cc:saved_model:load_attempt_count{status="success"}')
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    rules = query(monitored, 'ALERTS{alertstate="firing"}')
    assert rules == []
