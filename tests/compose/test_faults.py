"""The fault matrix on the real compose stack, each fault under load from scripts/loadtest:
every failed request is counted by kind, and the time to recover is measured. The figures are
written to test-artifacts/fault-matrix.json (docs/reliability.md); the assertions are about what
clients get (documented problems, never a hang or an unexplained 5xx), and that it recovers.

One stack for the module (`stack` fixture of tests/compose/conftest.py); scenarios in file order."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.compose.project import API_HOST, ComposeProject
from tests.support.images import zeros_png
from tests.support.paths import SCRIPTS_DIR
from tests.support.uploads import RawUpload, multipart_photo
from tests.support.waiting import wait_until

# The first scenario also waits for the stack's (cold: long) image builds: its time limit is the
# compose tests' own (tests/compose/conftest.py), which counts those builds.
pytestmark = [pytest.mark.docker, pytest.mark.slow]

LOAD_USERS = 4
WARM_UP = 3.0  # seconds of load before each fault
# Each scenario's load: enough to be under load before, during and just after the fault; the
# recovery itself is measured by the scenario's own probes, whatever its length.
LOAD_SECONDS = 15
MIB = 2**20
RESULTS: dict[str, dict[str, Any]] = {}
STARTED: list[Load] = []


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    """No per-client limits: behind Docker's published port every load client reaches Traefik
    from the bridge gateway, as one address (docs/edge.md), so the limits would refuse the load
    itself instead of the faults being measured."""
    return {"RATE_LIMIT_AVERAGE": "0", "INFLIGHT_PER_CLIENT": "100000"}


class Load:
    """scripts/loadtest `fixed` in the background against the stack for `seconds`."""

    def __init__(self, stack: ComposeProject, out: Path, name: str, seconds: float) -> None:
        self.out = out / name
        self.name = name
        pids = [f"--pid=api={host_pid(stack, 'api.service')}",
                f"--pid=model-server={host_pid(stack, 'model.service')}"]
        self.process = subprocess.Popen(
            [str(SCRIPTS_DIR / "loadtest"), "fixed", "--url", stack.url(), "--users",
             str(LOAD_USERS), "--seconds", str(seconds), "--no-large", "--out", str(self.out),
             *pids], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        STARTED.append(self)

    def result(self, timeout: float = 180) -> dict[str, Any]:
        output, _ = self.process.communicate(timeout=timeout)
        print(output[-3000:])
        summary = json.loads((self.out / "fixed-summary.json").read_text())
        summary.pop("windows", None)
        return summary


@pytest.fixture(autouse=True)
def no_load_left_behind() -> Iterator[None]:
    """A scenario that failed half-way leaves its load running: stop it after the test."""
    yield
    while STARTED:
        process = STARTED.pop().process
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def host_pid(stack: ComposeProject, service: str) -> int:
    return int(stack.inspect(service)["State"]["Pid"])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """wait_until, with a refused or cut HTTP request counting as "not yet"."""
    return wait_until(condition, timeout, what, every=every, ignore=(httpx.HTTPError,))


def predict(stack: ComposeProject, photo: bytes, timeout: float = 10) -> httpx.Response:
    with stack.client(API_HOST, timeout=timeout) as client:
        return client.post("/predict/image", files={"image_to_predict": ("l.jpg", photo)})


def answered(stack: ComposeProject, photo: bytes) -> bool:
    try:
        return predict(stack, photo).status_code == 200
    except httpx.HTTPError:
        return False


def record(name: str, summary: dict[str, Any], **figures: Any) -> None:
    RESULTS[name] = {"requests": summary["requests"], "failed": summary["failures"],
                     "errors": summary["errors"], "rps": summary["rps"],
                     "p99_ms": summary["p99_ms"], **figures}
    print(name, json.dumps(RESULTS[name], indent=1))


def error_kinds(summary: dict[str, Any]) -> set[str]:
    """'HTTP 503 model_unavailable', 'ConnectionError', ... (payload names stripped)."""
    kinds = set()
    for key in summary["errors"]:
        text = key.split(": ", 1)[1]
        kinds.add(text.split(", expected")[0] if text.startswith("HTTP") else
                  text.split("(")[0].strip())
    return kinds


@pytest.fixture(scope="module")
def out(artifacts_dir: Path) -> Iterator[Path]:
    path = artifacts_dir / "fault-matrix"
    path.mkdir(exist_ok=True)
    yield path
    (artifacts_dir / "fault-matrix.json").write_text(json.dumps(RESULTS, indent=2) + "\n")


@pytest.fixture(scope="module")
def photo(leaf_photo_paths: list[Path]) -> bytes:
    return leaf_photo_paths[0].read_bytes()


def test_model_server_killed_gives_503_and_recovers_without_api_restart(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    api_started = stack.inspect("api.service")["State"]["StartedAt"]
    load = Load(stack, out, "model-killed", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    stack.compose("kill", "model.service")
    outage = wait_for(lambda: (r := predict(stack, photo)).status_code == 503 and r, 30,
                      "503 while the model is down")
    assert outage.headers["content-type"].startswith("application/problem+json")
    assert outage.json()["code"] == "model_unavailable" and "retry-after" in outage.headers
    time.sleep(5)
    started = time.monotonic()
    stack.compose("start", "model.service")
    wait_for(lambda: answered(stack, photo), 180, "a prediction after the model came back")
    recovery = time.monotonic() - started
    summary = load.result()
    record("model server killed", summary, recovery_s=round(recovery, 1),
           recovery_from="docker compose start model.service")
    assert error_kinds(summary) <= {"HTTP 503 model_unavailable", "HTTP 504 model_timeout"}
    assert stack.inspect("api.service")["State"]["StartedAt"] == api_started


def test_model_server_paused_gives_504_within_the_deadline_without_memory_pile_up(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    api = psutil.Process(host_pid(stack, "api.service"))
    load = Load(stack, out, "model-paused", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    before = api.memory_info().rss
    stack.compose("pause", "model.service")  # the cgroup freezer: SIGSTOP for every process
    try:
        asked = time.monotonic()
        reply = predict(stack, photo, timeout=30)
        answered_in = time.monotonic() - asked
        assert reply.status_code == 504 and reply.json()["code"] == "model_timeout", reply.text
        peak = before
        for _ in range(25):  # 5 s of the pause, under load
            peak = max(peak, api.memory_info().rss)
            time.sleep(0.2)
    finally:
        stack.compose("unpause", "model.service")
    started = time.monotonic()
    wait_for(lambda: answered(stack, photo), 60, "a prediction after unpausing")
    recovery = time.monotonic() - started
    summary = load.result()
    record("model server paused (SIGSTOP)", summary, first_504_after_s=round(answered_in, 1),
           api_rss_growth_mib=round((peak - before) / MIB, 1), recovery_s=round(recovery, 1))
    assert answered_in < 5.0 + 3.0  # MODEL_DEADLINE_SECONDS plus the hops
    assert peak - before < 100 * MIB
    assert error_kinds(summary) <= {"HTTP 504 model_timeout", "HTTP 503 model_unavailable"}


def test_api_killed_is_restarted_and_requests_resume(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    restarts = stack.inspect("api.service")["RestartCount"]
    load = Load(stack, out, "api-killed", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    killed = time.monotonic()
    os.kill(host_pid(stack, "api.service"), signal.SIGKILL)  # a crash: the engine restarts it
    wait_for(lambda: stack.inspect("api.service")["RestartCount"] > restarts, 60,
             "the engine restarting the API")
    wait_for(lambda: answered(stack, photo), 120, "a prediction after the API restarted")
    recovery = time.monotonic() - killed
    summary = load.result()
    record("API container killed", summary, recovery_s=round(recovery, 1),
           recovery_from="SIGKILL of the API's process")
    # While it is down the proxy answers its own problem documents (502/503), promptly.
    assert error_kinds(summary) <= {"HTTP 502 upstream_unavailable",
                                    "HTTP 503 upstream_unavailable",
                                    "HTTP 504 upstream_timeout"}
    assert summary["max_ms"] < 30_000


def test_traefik_restarted_is_back_within_seconds(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    load = Load(stack, out, "traefik-restarted", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    started = time.monotonic()
    stack.compose("restart", "traefik", timeout=120)
    wait_for(lambda: answered(stack, photo), 60, "a prediction after restarting Traefik")
    recovery = time.monotonic() - started
    summary = load.result()
    record("Traefik restarted", summary, recovery_s=round(recovery, 1),
           recovery_from="docker compose restart traefik")
    assert recovery < 30
    # Clients see refused or reset connections (Locust's "HTTP 0") while the only proxy is down.
    # Found here: for a moment after it starts, Traefik answers 404 (its routes from the file
    # provider are not loaded yet); counted in the figures (docs/reliability.md), left to the
    # routing configuration's owners.
    assert error_kinds(summary) <= {"HTTP 0", "HTTP 404", "HTTP 502 upstream_unavailable",
                                    "HTTP 503 upstream_unavailable"}, error_kinds(summary)


def model_dir(stack: ComposeProject) -> Path:
    (mount,) = [m for m in stack.inspect("model.service")["Mounts"]
                if m["Destination"] == "/models"]
    return Path(mount["Source"]) / "cassava"


def newest_version(directory: Path) -> int:
    return max(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def served_version(stack: ComposeProject, photo: bytes) -> int:
    reply = predict(stack, photo)
    assert reply.status_code == 200, reply.text
    return reply.json()["model"]["version"]


def test_new_model_version_under_load_fails_no_request(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    directory = model_dir(stack)
    new = newest_version(directory) + 1
    load = Load(stack, out, "new-version", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    staging = directory / f".staging-{new}"
    shutil.copytree(directory / str(new - 1), staging)
    dropped = time.monotonic()
    staging.rename(directory / str(new))  # atomically, as scripts/convert-model does
    wait_for(lambda: served_version(stack, photo) == new, 120, f"version {new} served")
    switched = time.monotonic() - dropped
    summary = load.result()
    record("new model version dropped in", summary, switch_s=round(switched, 1))
    assert summary["failures"] == 0, summary["errors"]


def model_status(stack: ComposeProject) -> dict[str, dict[str, Any]]:
    """GET /v1/models/cassava on the model server's REST port, from inside its container:
    version -> its status entry."""
    script = ("exec 3<>/dev/tcp/127.0.0.1/8501 && printf 'GET /v1/models/cassava HTTP/1.0\\r\\n"
              "Connection: close\\r\\n\\r\\n' >&3 && cat <&3")
    reply = stack.exec("model.service", "bash", "-c", script).stdout
    # text mode has turned the HTTP header's CRLFs into newlines
    body = json.loads(reply.replace("\r\n", "\n").split("\n\n", 1)[1])
    return {entry["version"]: entry for entry in body["model_version_status"]}


def test_version_that_fails_to_load_keeps_the_old_one_serving(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    directory = model_dir(stack)
    serving = served_version(stack, photo)
    broken = newest_version(directory) + 1
    load = Load(stack, out, "broken-version", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    staging = directory / f".staging-{broken}"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    (staging / "variables").mkdir()
    staging.chmod(0o755)
    (staging / "saved_model.pb").chmod(0o644)
    staging.rename(directory / str(broken))
    try:
        failed = wait_for(lambda: (entry := model_status(stack).get(str(broken)))
                          and entry["state"] == "END" and entry, 90,
                          f"version {broken} reported as failed to load")
        summary = load.result()
        assert served_version(stack, photo) == serving
    finally:
        shutil.rmtree(directory / str(broken), ignore_errors=True)
    record("model version that fails to load", summary, still_serving=serving,
           status_of_broken_version=failed)
    assert summary["failures"] == 0, summary["errors"]
    assert failed["status"]["error_code"] not in ("OK", 0), failed
    assert failed["status"]["error_message"]


def test_many_large_uploads_are_refused_cleanly_without_an_oom_kill(
        stack: ComposeProject, out: Path, photo: bytes) -> None:
    api_state = stack.inspect("api.service")
    restarts = api_state["RestartCount"]
    api = psutil.Process(host_pid(stack, "api.service"))
    limit = api_state["HostConfig"]["Memory"]
    giant = zeros_png(6000, 6000, 16, 0)  # 72 KB, ~470 MiB to decode
    # ~9.5 MB of noise behind a JPEG header: spooled by the multipart parser, then refused.
    heavy = photo + os.urandom(9 * 1024 * 1024)
    load = Load(stack, out, "memory-limit", seconds=LOAD_SECONDS)
    time.sleep(WARM_UP)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        for _ in range(3000):
            if stop.wait(0.05):
                return
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [api, *api.children(True)]))
            except psutil.Error:
                return

    def send(index: int) -> str:
        # With Expect: 100-continue (as curl sends bodies over 1 MiB): a body the proxy refuses
        # before reading it (429 uploads_busy) is answered, not reset half-sent.
        body, content_type = multipart_photo(giant if index % 2 else heavy, filename="x.png")
        try:
            with RawUpload(stack.port, API_HOST, "/predict/image", body, content_type,
                           timeout=120) as upload:
                status, headers, reply = upload.exchange()
        except OSError as error:
            return type(error).__name__
        media_type = headers.get("content-type", "").split(";")[0]
        kind = (json.loads(reply)["code"] if media_type == "application/problem+json"
                else media_type)
        return f"{status} {kind}"

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(send, range(48)))
    stop.set()
    sampler.join(5)
    summary = load.result()
    state = stack.inspect("api.service")
    counts = {answer: answers.count(answer) for answer in sorted(set(answers))}
    record("API memory limit: 48 large uploads, 24 at once", summary, answers=counts,
           api_rss_peak_mib=round(peak / MIB), memory_limit_mib=round(limit / MIB),
           oom_killed=state["State"]["OOMKilled"], restarts=state["RestartCount"] - restarts)
    assert not state["State"]["OOMKilled"] and state["RestartCount"] == restarts
    assert peak < limit
    # The giants: refused as blank after their (budgeted) decode, or told to retry. The 9.5 MB
    # bodies are a real photo with noise appended: answered, or refused by the proxy's global
    # cap on large uploads (429 uploads_busy) before it buffers them: its tmpfs holds every
    # slot, so no 500 (before the cap, six 10 MB bodies filled it: "no space left on device").
    # No 5xx at all but the API's 503 decoder_busy, from the proxy or the API. Behind Docker's
    # port publishing every client is the bridge's address to Traefik, so the per-address cap
    # on large uploads (UPLOAD_SLOTS_PER_CLIENT, docs/edge.md) refuses most of them up front
    # (429 too_many_uploads); the rest still reach the API together.
    assert set(answers) <= {"200 application/json", "422 blank_image", "413 image_too_costly",
                            "503 decoder_busy", "429 uploads_busy", "429 too_many_uploads"}, counts
    assert len(answers) - answers.count("429 too_many_uploads") - answers.count(
        "429 uploads_busy") >= 8, counts  # enough reached the API to test its memory
    assert summary["failures"] == 0 or error_kinds(summary) <= {"HTTP 503 decoder_busy"}
