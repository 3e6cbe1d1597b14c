"""A rollout for real: the model server (TF Serving's --model_config_file and version labels), the
API under uvicorn, scripts/model-rollout editing both files, and two clients predicting all along.
Shadow answers nothing from canary and records agreement; canary answers some; promote and
rollback fail no request, and once an answer shows a new mapping, no later request gets the old
one."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_service.conftest import FIELD, api_env, start_api
from tests.model_service.clients import publish_version
from tests.support.model_server import start_model_server
from tests.support.paths import MODEL_REPOSITORY, SCRIPTS_DIR, SEED_LABELS, leaf_photos
from tests.support.prometheus import parse_samples, value
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MODEL = "cassava"


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    status: int
    label: str | None
    version: int | None
    demo: bool | None


def rollout(repository: Path, *args: str) -> float:
    """Run scripts/model-rollout; the time it returned."""
    subprocess.run([SCRIPTS_DIR / "model-rollout", "--repository", str(repository),
                    "--model", MODEL, *args], check=True, capture_output=True, timeout=60)
    return time.monotonic()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    base = repo / MODEL
    for version in (1, 2):
        publish_version(base, version)
    (base / "labels.json").write_text(SEED_LABELS.read_text())
    cards = json.loads((MODEL_REPOSITORY / MODEL / "model.json").read_text())
    cards["versions"]["2"] = {**cards["versions"]["1"], "demo": False}
    (base / "model.json").write_text(json.dumps(cards))
    return repo


class Load:
    """Two clients predicting until stopped, every answer recorded."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._photo = leaf_photos()[0].read_bytes()
        self._threads = [threading.Thread(target=self._run) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                reply = client.post("/predict/image",
                                    files={FIELD: ("leaf.jpg", self._photo, "image/jpeg")})
                model = reply.json().get("model", {}) if reply.status_code == 200 else {}
                self.answers.append(Answer(started, time.monotonic(), reply.status_code,
                                           model.get("label"), model.get("version"),
                                           model.get("demo")))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def seen(self, label: str, version: int, after: float) -> Answer | None:
        return next((a for a in list(self.answers) if a.started > after and a.label == label
                     and a.version == version), None)


def test_shadow_canary_promote_and_rollback_under_load(repository: Path, logs_dir: Path) -> None:
    rollout(repository, "init", "--version", "1", "--base-path", str(repository / MODEL))
    server = start_model_server(
        MODEL, repository / MODEL, logs_dir, f"--model_config_file={repository / 'models.config'}",
        "--model_config_file_poll_wait_seconds=1", "--file_system_poll_wait_seconds=1",
        "--allow_version_labels_for_unavailable_models=true")
    api = start_api(logs_dir, api_env(server, MODEL_NAME=MODEL,
                                      LABELS_PATH=repository / MODEL / "labels.json",
                                      ROLLOUT_FILE=repository / "rollout.json"))
    try:
        def shadow_compared() -> float:
            page = httpx.get(f"{api.base_url}/metrics", timeout=10).text
            return value(parse_samples(page), "cassava_api_shadow_comparisons",
                         stable_version="1", canary_version="2", agreed="true")

        with Load(api.base_url) as load:
            wait_until(lambda: load.seen("stable", 1, 0), 120, "stable answers")
            shadow_at = rollout(repository, "shadow", "2")
            wait_until(lambda: shadow_compared() >= 3, 120, "shadow comparisons")
            canary_at = rollout(repository, "canary", "2", "--percent", "50")
            wait_until(lambda: load.seen("canary", 2, canary_at), 120, "a canary answer")
            promote_at = rollout(repository, "promote")
            wait_until(lambda: load.seen("stable", 2, promote_at), 120, "stable = 2")
            time.sleep(2)  # a few answers after the promotion
            rollback_at = rollout(repository, "rollback")
            wait_until(lambda: load.seen("stable", 1, rollback_at), 120, "stable = 1 again")
            time.sleep(2)
        answers = sorted(load.answers, key=lambda a: a.started)
    finally:
        api.stop()
        server.stop()

    assert [a for a in answers if a.status != 200] == []
    assert {(a.version, a.demo) for a in answers} == {(1, True), (2, False)}
    # Shadow: every answer from stable (version 1) until the canary share was set.
    assert {(a.label, a.version) for a in answers if a.ended < canary_at} == {("stable", 1)}
    assert any(shadow_at < a.started and a.ended < canary_at for a in answers)

    def after_first(mapping: tuple[str, int], since: float, until: float) -> list[Answer]:
        """Answers started after the first one with `mapping` ended (since `since`)."""
        first = min(a.ended for a in answers
                    if a.started > since and (a.label, a.version) == mapping)
        return [a for a in answers if first < a.started < until]

    promoted = after_first(("stable", 2), promote_at, rollback_at)
    rolled_back = after_first(("stable", 1), rollback_at, float("inf"))
    assert promoted and {(a.label, a.version) for a in promoted} == {("stable", 2)}
    assert rolled_back and {(a.label, a.version) for a in rolled_back} == {("stable", 1)}
    canary_phase = [a for a in answers if canary_at < a.started and a.ended < promote_at]
    assert {(a.label, a.version) for a in canary_phase} <= {("stable", 1), ("canary", 2)}
