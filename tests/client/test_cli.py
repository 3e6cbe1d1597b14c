"""The installed `cassava-survey` command against the real no-Docker stack (scripts/run-local):
a mixed folder, a stack killed mid-run and restarted, and a real Traefik rate limit (429)."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.client.conftest import KILIFI, KISUMU, SurveyFolder
from tests.support.local_stack import API_HOST, LocalStack
from tests.support.paths import REPO_ROOT, leaf_photos
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLI = REPO_ROOT / ".venv" / "bin" / "cassava-survey"
# The API's access log line (app.core.metrics): "... app.access [id] POST /path 200 12.3 ms".
BATCH_REQUEST = re.compile(r"app\.access \[[^\]]*\] POST /v1/predict/images 200 ")


def survey(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def api_url(port: int) -> str:
    return f"http://{API_HOST}:{port}"  # as typed: the tool resolves *.localhost itself


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def api_batch_requests(stack: LocalStack) -> int:
    return sum(1 for line in stack.log().splitlines()
               if line.startswith("api ") and BATCH_REQUEST.search(line))


def test_a_mixed_folder_gives_the_right_csv_and_geojson_rows(
        local_stack: LocalStack, survey_folder: SurveyFolder, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    run = survey("diagnose", survey_folder.root, "--api", api_url(local_stack.port),
                 "--out", out)
    assert run.returncode == 0, run.stderr
    assert f"skipped {survey_folder.others['notes.txt']}: not a JPEG or PNG photo" in run.stderr
    assert ".DS_Store" not in run.stderr

    rows = {Path(row["file"]).name: row for row in csv_rows(out)}
    assert sorted(rows) == sorted(survey_folder.photos)  # every photo once, nothing else
    assert rows["cut.jpg"]["error"] == "truncated_image" and rows["cut.jpg"]["code"] == ""
    for name in ("kisumu.jpg", "kilifi.jpg", "plain.jpg"):
        single = local_stack.predict(API_HOST, "/v1/predict/image",
                                     survey_folder.photos[name]).json()
        row = rows[name]
        assert (row["code"], row["prediction"], row["model"], row["model_version"]) == (
            single["code"], single["prediction"], single["model"]["name"],
            str(single["model"]["version"]))
        assert float(row["confidence"]) == pytest.approx(single["confidence"], abs=1e-6)
        assert float(row["entropy"]) == pytest.approx(single["entropy"], abs=1e-6)
        assert row["low_confidence"] == str(single["low_confidence"])
        assert row["error"] == ""
    assert rows["kisumu.jpg"]["taken_at"] == "2024-05-01T09:30:15+03:00"
    assert (float(rows["kisumu.jpg"]["latitude"]), float(rows["kisumu.jpg"]["longitude"])) == \
        pytest.approx(KISUMU, abs=1e-6)
    assert rows["plain.jpg"]["latitude"] == rows["plain.jpg"]["taken_at"] == ""

    features = json.loads((tmp_path / "results.geojson").read_text())["features"]
    points = {Path(f["properties"]["file"]).name: f["geometry"]["coordinates"]
              for f in features if f["geometry"]}
    assert points.keys() == {"kisumu.jpg", "kilifi.jpg"}
    assert points["kilifi.jpg"] == pytest.approx([KILIFI[1], KILIFI[0]], abs=1e-6)
    assert len(features) == len(survey_folder.photos)

    summary = survey("summary", out, "--plot", tmp_path / "map.png")
    assert summary.returncode == 0, summary.stderr
    assert (tmp_path / "map.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "4 photos: 3 diagnosed, 1 failed" in summary.stdout
    assert "per area" in summary.stdout and "-0.2,34.7" in summary.stdout  # Kisumu's cell
    assert "(and 1 diagnosed photos without a GPS position)" in summary.stdout


def test_killing_the_stack_mid_run_then_restarting_resumes_without_repeats(
        local_stack_factory: Callable[..., LocalStack], tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = leaf_photos()
    for index in range(12):
        (folder / f"leaf{index:02}.jpg").write_bytes(sources[index % len(sources)].read_bytes())
    out, journal = tmp_path / "results.csv", tmp_path / "results.resume.jsonl"
    stack = local_stack_factory(keep_going=True)
    args = ["diagnose", folder, "--api", api_url(stack.port), "--out", out,
            "--batch-size", "1", "--concurrency", "1", "--retries", "1"]

    first = subprocess.Popen([CLI, *map(str, args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    wait_until(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 3, 60,
               "three finished photos in the resume file", every=0.01,
               gave_up=lambda: None if first.poll() is None else "the survey ended first")
    stack.stop_service("traefik", signal.SIGKILL)  # the stack dies under the running survey
    stack.stop()
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 1, stderr
    assert "cannot connect to" in stderr and "run the same command again" in stderr
    finished = len(journal.read_text().splitlines())
    assert 3 <= finished < 12, stderr  # really interrupted mid-run

    restarted = local_stack_factory(port=stack.port)
    second = survey(*args)
    assert second.returncode == 0, second.stderr
    assert f"12 photos ({finished} already done, {12 - finished} to send)" in second.stderr
    assert api_batch_requests(restarted) == 12 - finished  # finished photos were not sent again
    names = [Path(row["file"]).name for row in csv_rows(out)]
    assert sorted(names) == [f"leaf{index:02}.jpg" for index in range(12)]
    assert all(row["code"] for row in csv_rows(out))


@pytest.fixture
def rate_limited_proxy(local_stack: LocalStack, tmp_path: Path) -> Iterator[ManagedProcess]:
    """A real Traefik with a per-client rateLimit (1 request/s, burst 1) in front of the stack's
    API: more than one request a second gets Traefik's own 429 with Retry-After."""
    port = free_port()
    api = local_stack.service_ports("api")["http"]
    dynamic = tmp_path / "ratelimit.yml"
    dynamic.write_text(json.dumps({"http": {
        "routers": {
            "api": {"entryPoints": ["web"], "rule": f"Host(`{API_HOST}`)",
                    "middlewares": ["per-client"], "service": "api"},
            # Unlimited, so polling for readiness spends none of the limit.
            "health": {"entryPoints": ["web"], "priority": 1000,
                       "rule": f"Host(`{API_HOST}`) && Path(`/healthz`)", "service": "api"}},
        "middlewares": {"per-client": {"rateLimit": {"average": 1, "period": "1s", "burst": 1}}},
        "services": {"api": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{api}"}]}}},
    }}))
    proxy = ManagedProcess(f"traefik-ratelimit-{port}", [
        REPO_ROOT / ".venv" / "bin" / "traefik", f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={dynamic}", "--accessLog=true", "--log.level=INFO",
        "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"], tmp_path)
    proxy.port = port  # type: ignore[attr-defined]
    try:
        proxy.wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1,
                                           headers={"Host": API_HOST}).status_code == 200,
                         30, "the health route")
        yield proxy
    finally:
        proxy.stop()


def test_a_429_from_the_proxy_is_retried_after_retry_after(
        rate_limited_proxy: ManagedProcess, tmp_path: Path) -> None:
    photos = leaf_photos()
    port = rate_limited_proxy.port  # type: ignore[attr-defined]
    run = survey("diagnose", *photos, "--api", api_url(port), "--out", tmp_path / "r.csv",
                 "--batch-size", "1", "--concurrency", "3")
    assert run.returncode == 0, run.stderr
    limited = [line for line in rate_limited_proxy.log().splitlines()
               if '"POST /v1/predict/images HTTP/1.1" 429' in line]
    assert limited, rate_limited_proxy.log()[-2000:]  # Traefik really refused some requests
    assert re.search(r"retrying in 1\.0 s: HTTP 429 Too Many Requests", run.stderr), run.stderr
    rows = csv_rows(tmp_path / "r.csv")
    assert len(rows) == len(photos) and all(row["code"] for row in rows)
