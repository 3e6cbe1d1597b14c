"""Observability of the no-Docker stack (scripts/run-local --monitoring, LOG_FORMAT=json): one
request id through Traefik's, the API's and the model server's JSON logs; API counters equal to
what went through Traefik; /metrics off the public hosts; Debian's Prometheus scraping all three
hops, with the dashboard's queries returning data."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack, start_local_stack
from tests.support.paths import REPO_ROOT
from tests.support.prometheus import delta, parse_samples, queries_without_data
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

DASHBOARD = REPO_ROOT / "monitoring" / "grafana" / "dashboards" / "cassava-stack.json"
FIELD = "image_to_predict"


@pytest.fixture(scope="module")
def observed(logs_dir: Path) -> Iterator[LocalStack]:
    """A private run-local stack: --monitoring (Debian's Prometheus) and JSON logs."""
    stack = start_local_stack(logs_dir, env={"LOG_FORMAT": "json", "MONITORING": "1"})
    yield stack
    stack.stop()


def json_records(observed: LocalStack, service: str) -> list[dict[str, Any]]:
    """The JSON log lines one service wrote (run-local prefixes them with `name |`)."""
    records = []
    for line in observed.log().splitlines():
        name, _, text = line.partition(" | ")
        if name.strip() == service and text.startswith("{"):
            records.append(json.loads(text))
    return records


def wait_for_records(observed: LocalStack, service: str, request_id: str,
                     key: str = "request_id", last_logger: str | None = None
                     ) -> list[dict[str, Any]]:
    """The service's records of one request, once they are written (up to `last_logger`'s, the
    request's last line, when given)."""
    def records() -> list[dict[str, Any]] | None:
        found = [r for r in json_records(observed, service) if r.get(key) == request_id]
        if found and (last_logger is None or any(r.get("logger") == last_logger for r in found)):
            return found
        return None

    return wait_until(records, 10, f"{service} log record with {key}={request_id}")


def api_metrics(observed: LocalStack) -> dict:
    port = observed.service_ports("api")["http"]
    return parse_samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)


def prometheus_query(observed: LocalStack, query: str) -> list[dict[str, Any]]:
    port = observed.service_ports("prometheus")["http"]
    reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query},
                      timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()["data"]["result"]


@pytest.mark.parametrize("host, path", [(API_HOST, "/metrics"), (UI_HOST, "/api/metrics"),
                                        (UI_HOST, "/metrics")])
def test_metrics_are_not_reachable_through_the_public_hosts(observed: LocalStack, host: str,
                                                            path: str) -> None:
    reply = observed.get(host, path)
    assert reply.status_code == 404
    assert "cassava_api_requests_total" not in reply.text
    # ... while the API itself serves them to a scraper on its own port.
    assert api_metrics(observed)


def test_one_request_id_through_all_three_logs(observed: LocalStack,
                                               leaf_photo_paths: list[Path]) -> None:
    sent = f"trace-{uuid.uuid4().hex[:12]}"
    reply = observed.predict(API_HOST, "/predict/image", leaf_photo_paths[0],
                          headers={"X-Request-ID": sent})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == sent == reply.json()["request_id"]
    (proxy,) = wait_for_records(observed, "traefik", sent, key="request_X-Request-Id")
    assert proxy["DownstreamStatus"] == 200 and proxy["RequestPath"] == "/predict/image"
    assert "ClientAddr" not in proxy and "ClientHost" not in proxy  # no personal data
    api = wait_for_records(observed, "api", sent, last_logger="app.access")
    access = [r for r in api if r["logger"] == "app.access"]
    assert access and access[0]["status"] == 200 and access[0]["duration_ms"] > 0
    prediction = [r for r in api if r["logger"] == "app.prediction_service"]
    assert prediction[0]["model_name"] == "saved_model" and prediction[0]["model_version"] == 1
    model = wait_for_records(observed, "model-server", sent)
    assert [r["api"] for r in model] == ["Predict"]
    assert model[0]["model_version"] == 1 and model[0]["duration_ms"] > 0
    for record in [proxy, *api, *model]:
        assert len(json.dumps(record)) < 2000  # never image bytes


def test_an_id_is_generated_when_the_client_sends_none(observed: LocalStack,
                                                       leaf_photo_paths: list[Path]) -> None:
    reply = observed.predict(API_HOST, "/predict/image", leaf_photo_paths[0])
    generated = reply.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert reply.json()["request_id"] == generated
    wait_for_records(observed, "traefik", generated, key="request_X-Request-Id")
    wait_for_records(observed, "api", generated)
    wait_for_records(observed, "model-server", generated)
    # An insane id from the client is replaced, not echoed.
    odd = observed.get(API_HOST, "/healthz", headers={"X-Request-ID": "a b<c>"})
    assert odd.headers["x-request-id"] != "a b<c>" and len(odd.headers["x-request-id"]) == 32


def test_api_counters_equal_what_went_through_traefik(observed: LocalStack,
                                                      leaf_photo_paths: list[Path]) -> None:
    before = api_metrics(observed)
    photos = [p.read_bytes() for p in leaf_photo_paths[:3]]
    sent: dict[str, int] = {}
    codes: dict[str, int] = {}
    bad = [(b"", "empty_image"), (photos[0][:500], "truncated_image"),
           (b"plain text, not a photo", "unsupported_media_type")]
    for host, path in ((API_HOST, "/predict/image"), (UI_HOST, "/api/predict/image")):
        for data in photos:
            assert observed.predict(host, path, data).status_code == 200
            sent["200"] = sent.get("200", 0) + 1
        for data, code in bad:
            reply = observed.predict(host, path, data)
            assert reply.json()["code"] == code
            sent[str(reply.status_code)] = sent.get(str(reply.status_code), 0) + 1
            codes[code] = codes.get(code, 0) + 1
    after = api_metrics(observed)
    for status, count in sent.items():
        assert delta(after, before, "cassava_api_requests_total", route="/predict/image",
                     status=status) == count
    for code, count in codes.items():
        assert delta(after, before, "cassava_api_rejected_uploads_total", code=code) == count
    total = sum(sent.values())
    assert delta(after, before, "cassava_api_request_duration_seconds_count",
                 route="/predict/image") == total
    assert delta(after, before, "cassava_api_upload_size_bytes_count") == total
    assert delta(after, before, "cassava_api_predictions_total") == len(photos) * 2


def test_prometheus_scrapes_every_hop_and_the_dashboard_has_data(
        observed: LocalStack, leaf_photo_paths: list[Path]) -> None:
    for photo in leaf_photo_paths[:3]:
        assert observed.predict(API_HOST, "/predict/image", photo).status_code == 200
    # Every target scraped at least twice since the traffic, so that each rate() has two
    # points (the targets' scrape offsets differ within the 10 s interval): poll, then assert.
    queries = [(panel["title"], target["expr"].replace("$__rate_interval", "1m"))
               for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"]]
    empty = queries_without_data(queries, lambda query: prometheus_query(observed, query), 60,
                                 every=2)
    up = {s["metric"]["job"]: s["value"][1] for s in prometheus_query(observed, "up")}
    assert up == {"api": "1", "model-server": "1", "traefik": "1"}
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    # The alert rules are loaded, and none fires on a healthy stack.
    assert prometheus_query(observed, 'ALERTS{alertstate="firing"}') == []
