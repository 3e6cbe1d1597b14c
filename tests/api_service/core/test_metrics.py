"""GET /metrics of the API (real uvicorn, real model server): counters match what was sent, by
status and problem code; histograms hold one observation per request; several workers add up."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, multiprocess

from tests.api_service.conftest import FIELD, ApiServer, api_env, start_api
from tests.support.model_server import RunningModelServer
from tests.support.prometheus import Samples, delta, label_values, parse_samples
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

ROUTE = "/predict/image"


def scrape(client: httpx.Client) -> Samples:
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return parse_samples(reply.text)


def send_mix(client: httpx.Client, photo: bytes, good: int) -> dict[str, int]:
    """`good` photos plus one of each bad kind; returns status -> count sent."""
    statuses: dict[str, int] = {}
    requests = [{"files": {FIELD: ("leaf.jpg", photo, "image/jpeg")}}] * good + [
        {"files": {FIELD: ("leaf.jpg", b"", "image/jpeg")}},  # 400 empty_image
        {"files": {FIELD: ("leaf.jpg", photo[: len(photo) // 2], "image/jpeg")}},  # truncated
        {"files": {FIELD: ("leaf.txt", b"not an image at all", "text/plain")}},  # 415
        {"files": {"other": ("leaf.jpg", photo, "image/jpeg")}},  # 422 missing_field
        {"content": b"{}", "headers": {"content-type": "application/json"}},  # not_multipart
    ]
    for kwargs in requests:
        reply = client.post(ROUTE, **kwargs)
        statuses[str(reply.status_code)] = statuses.get(str(reply.status_code), 0) + 1
    return statuses


def test_counters_and_histograms_match_what_was_sent(seed_api: ApiServer,
                                                     leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0].read_bytes()
    with seed_api.client() as client:
        before = scrape(client)
        statuses = send_mix(client, photo, good=3)
        after = scrape(client)
    sent = sum(statuses.values())
    assert statuses == {"200": 3, "400": 2, "415": 1, "422": 2}
    for status, count in statuses.items():
        assert delta(after, before, "cassava_api_requests_total", route=ROUTE, method="POST",
                     status=status) == count
    codes = {code: delta(after, before, "cassava_api_rejected_uploads_total", code=code)
             for code in label_values(after, "cassava_api_rejected_uploads_total", "code")}
    assert {c: n for c, n in codes.items() if n} == {
        "empty_image": 1, "truncated_image": 1, "unsupported_media_type": 1,
        "missing_field": 1, "not_multipart": 1}
    assert delta(after, before, "cassava_api_request_duration_seconds_count",
                 route=ROUTE) == sent
    assert delta(after, before, "cassava_api_upload_size_bytes_count") == sent
    # 1 ms .. 10 s resolution.
    buckets = {dict(labels)["le"] for (name, labels) in after
               if name == "cassava_api_request_duration_seconds_bucket"}
    assert {"0.001", "10.0", "+Inf"} <= buckets
    # Decoding ran for the 3 good photos and the 3 files it rejected (empty, truncated, text);
    # the model was called for the 3 good ones only.
    assert delta(after, before, "cassava_api_prediction_phase_duration_seconds_count",
                 phase="decode") == 6
    for phase in ("model", "reply"):
        assert delta(after, before, "cassava_api_prediction_phase_duration_seconds_count",
                     phase=phase) == 3
    assert delta(after, before, "cassava_api_predictions_total", model_name="saved_model",
                 model_version="1") == 3
    assert delta(after, before, "cassava_api_model_server_calls_total", method="Predict",
                 code="OK") == 3
    assert delta(after, before, "cassava_api_model_server_call_duration_seconds_count",
                 method="Predict") == 3
    # /metrics itself is the one request in flight while it is scraped.
    assert delta(after, {}, "cassava_api_requests_in_flight") == 1


def test_low_confidence_answers_are_counted(seed_model_server: RunningModelServer,
                                            logs_dir: Path, leaf_photo_paths: list[Path]) -> None:
    # Threshold 1.0: every answer is low-confidence.
    server = start_api(logs_dir, api_env(seed_model_server, LOW_CONFIDENCE_THRESHOLD=1.0),
                       name="api-low-confidence")
    try:
        with server.client() as client:
            for photo in leaf_photo_paths[:2]:
                assert client.post(ROUTE, files={FIELD: ("l.jpg", photo.read_bytes())}).json()[
                    "low_confidence"]
            after = scrape(client)
    finally:
        server.stop()
    assert delta(after, {}, "cassava_api_low_confidence_predictions_total",
                 model_name="saved_model", model_version="1") == 2
    assert delta(after, {}, "cassava_api_predictions_total") == 2


def test_model_server_outcomes_by_grpc_code(logs_dir: Path, leaf_photo_paths: list[Path]) -> None:
    # Nothing listens on the model server address: every call ends UNAVAILABLE.
    server = start_api(logs_dir, api_env("127.0.0.1:9", MODEL_RETRY_ATTEMPTS=1),
                       name="api-no-model")
    try:
        with server.client() as client:
            reply = client.post(ROUTE, files={FIELD: ("l.jpg", leaf_photo_paths[0].read_bytes())})
            assert reply.status_code == 503
            after = scrape(client)
    finally:
        server.stop()
    assert delta(after, {}, "cassava_api_model_server_calls_total", code="UNAVAILABLE") >= 1
    assert delta(after, {}, "cassava_api_model_server_calls_total", code="OK") == 0
    assert delta(after, {}, "cassava_api_rejected_uploads_total", code="model_unavailable") == 1


def test_metrics_can_be_switched_off(seed_model_server: RunningModelServer,
                                     logs_dir: Path) -> None:
    server = start_api(logs_dir, api_env(seed_model_server, METRICS_ENABLED="false"),
                       name="api-no-metrics")
    try:
        with server.client() as client:
            assert client.get("/metrics").status_code == 404
    finally:
        server.stop()


def test_several_workers_add_up(seed_model_server: RunningModelServer, logs_dir: Path,
                                tmp_path: Path, leaf_photo_paths: list[Path]) -> None:
    """WORKERS=2 with PROMETHEUS_MULTIPROC_DIR: every scrape, whichever worker answers
    it, reports the requests both workers served."""
    metrics_dir, scratch = tmp_path / "metrics", tmp_path / "scratch"
    metrics_dir.mkdir()
    scratch.mkdir()
    env = api_env(seed_model_server, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), WORKERS=2)
    server = start_api(logs_dir, env, name="api-two-workers")
    try:
        # Both workers have started once each has written its files (its lifespan calls the
        # model server); only then can the kernel hand connections to either.
        wait_until(lambda: len(list(metrics_dir.glob("counter_*.db"))) == 2, 60,
                   "two workers' metric files")
        sent = 0
        # A new connection each: whichever worker accepts it answers. Until both have served.
        served = per_worker_healthz(metrics_dir, scratch)
        while sent < 400 and not (len(served) == 2 and all(served.values())):
            assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
            sent += 1
            served = per_worker_healthz(metrics_dir, scratch)
        assert len(served) == 2 and all(served.values()), served
        total = sum(served.values())  # ours, and start_api's readiness polls
        assert total >= sent
        for _ in range(6):  # whichever worker answers the scrape reports both workers' requests
            samples = parse_samples(httpx.get(f"{server.base_url}/metrics", timeout=10).text)
            assert delta(samples, {}, "cassava_api_requests_total", route="/healthz") == total
    finally:
        server.stop()


def per_worker_healthz(directory: Path, scratch: Path) -> dict[str, float]:
    """GET /healthz requests counted by each worker, read from its own multiprocess file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir(exist_ok=True)
        shutil.copyfile(path, alone / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(alone))
        samples = parse_samples(generate_latest(registry).decode())
        counts[path.stem] = delta(samples, {}, "cassava_api_requests_total", route="/healthz")
    return counts


def test_methods_the_api_does_not_serve_share_one_label(api: httpx.Client) -> None:
    # Issue 20: every real HTTP method name became a series of its own (26 KB -> 157 KB of
    # /metrics in three seconds from one client). Every label of every metric: route is the
    # template (or <unmatched>), status the answer's, the rest the API's own values.
    for method in ("PROPFIND", "MKCOL", "PURGE", "BREW", "X-ANYTHING"):
        assert 400 <= api.request(method, "/healthz").status_code < 500
    methods = set(label_values(scrape(api), "cassava_api_requests_total", "method"))
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "other"}, methods
