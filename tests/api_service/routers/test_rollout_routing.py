"""Single predictions routed by version label, in-process with the model server faked: a 10 %
canary gets 10 % +- 3 points of 2,000 predictions, shadow answers nothing from canary and records
agreement, a failing or slow canary never fails or holds a farmer's answer, every answer names
its version, label and demo flag, and without a rollout file nothing changes. Through the real
model server: tests/api_service/test_rollout_end_to_end.py."""

from __future__ import annotations

import asyncio
import io
import json
import random
import shutil
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from app.tfserving.client import ModelFailed, ModelOutput
from app.tfserving.signature import Signature
from tests.api_service.conftest import FIELD
from tests.support.fake_model_server import FakeModelServer
from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio

DEMO_MODEL_DIR = REPO_ROOT / "model.service/models/cassava"
STABLE_ROW = (0.05, 0.1, 0.05, 0.7, 0.1)  # CMD
CANARY_ROW = (0.6, 0.1, 0.1, 0.1, 0.1)  # CBB


def small_photo() -> bytes:
    """A 48x48 noisy JPEG: cheap to decode, not blank."""
    pixels = np.random.default_rng(21).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


PHOTO = {"files": {FIELD: ("leaf.jpg", small_photo(), "image/jpeg")}}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """The demo model's labels and card; version 2's card says it is not a demo."""
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(DEMO_MODEL_DIR / "labels.json", folder / "labels.json")
    cards = json.loads((DEMO_MODEL_DIR / "model.json").read_text())
    cards["versions"]["2"] = {**cards["versions"]["1"], "demo": False}
    (folder / "model.json").write_text(json.dumps(cards))
    return folder


@pytest.fixture
def rollout_file(tmp_path: Path) -> Path:
    return tmp_path / "rollout.json"


@pytest.fixture
def app_settings(model_dir: Path, rollout_file: Path) -> dict[str, object]:
    return {"LABELS_PATH": model_dir / "labels.json", "ROLLOUT_FILE": rollout_file,
            "MIN_IMAGE_SIDE": 32}


@pytest.fixture
def labelled(fake_model_server: FakeModelServer) -> FakeModelServer:
    fake_model_server.labels = {"stable": 1, "canary": 2}
    fake_model_server.by_version = {1: STABLE_ROW, 2: CANARY_ROW}
    return fake_model_server


def plan(path: Path, canary: float = 0, shadow: float = 0) -> None:
    path.write_text(json.dumps({"canary_percent": canary, "shadow_percent": shadow}))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def predict(client: httpx.AsyncClient) -> dict:
    reply = await client.post("/predict/image", **PHOTO)
    assert reply.status_code == 200, reply.text
    return reply.json()["model"]


async def test_without_a_rollout_file_nothing_asks_for_labels(
        app_client: httpx.AsyncClient, fake_model_server: FakeModelServer) -> None:
    model = await predict(app_client)
    assert model == {"name": fake_model_server.model_name, "version": 1, "label": None,
                     "demo": True}
    assert fake_model_server.asked == [None]


@pytest.mark.slow  # 2,000 requests in-process: ~12 s, too long for the fast lane
async def test_a_ten_percent_canary_gets_ten_percent_of_2000_predictions(
        app_client: httpx.AsyncClient, labelled: FakeModelServer, rollout_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    plan(rollout_file, canary=10)
    monkeypatch.setattr(random, "random", random.Random(21).random)  # a repeatable split
    ok_before = sample("cassava_api_version_predictions_total", label="canary",
                       model_version="2", outcome="ok")
    answers = Counter()
    for _ in range(2000):
        model = await predict(app_client)
        answers[(model["label"], model["version"], model["demo"])] += 1
    assert set(answers) == {("stable", 1, True), ("canary", 2, False)}
    share = answers[("canary", 2, False)] / 2000
    assert 0.07 <= share <= 0.13
    assert sample("cassava_api_version_predictions_total", label="canary", model_version="2",
                  outcome="ok") - ok_before == answers[("canary", 2, False)]


async def test_shadow_answers_only_from_stable_and_records_agreement(
        app_client: httpx.AsyncClient, labelled: FakeModelServer, rollout_file: Path) -> None:
    plan(rollout_file, shadow=100)
    names = ("cassava_api_shadow_comparisons_total",
             {"stable_version": "1", "canary_version": "2", "agreed": "false"})
    before = sample(names[0], **names[1])
    dropped = _dropped()
    differences = sample("cassava_api_shadow_max_abs_difference_count", stable_version="1",
                         canary_version="2")
    for _ in range(20):
        assert await predict(app_client) == {"name": labelled.model_name, "version": 1,
                                             "label": "stable", "demo": True}
    await wait_until_async(  # the last shadow tasks finish
        lambda: sample(names[0], **names[1]) - before + _dropped() - dropped == 20, 10,
        "20 shadow comparisons or drops", every=0.01)
    compared = sample(names[0], **names[1]) - before
    assert compared + _dropped() - dropped == 20 and compared >= 1
    assert labelled.asked.count("canary") == compared
    assert sample("cassava_api_shadow_max_abs_difference_count", stable_version="1",
                  canary_version="2") - differences == compared
    # |0.6 - 0.05| on CBB is the largest difference: in the 0.75 bucket, not the 0.5 one.
    assert sample("cassava_api_shadow_max_abs_difference_bucket", stable_version="1",
                  canary_version="2", le="0.5") < sample(
        "cassava_api_shadow_max_abs_difference_bucket", stable_version="1",
        canary_version="2", le="0.75")


def _dropped() -> float:
    return sample("cassava_api_shadow_skipped_total", reason="dropped")


async def test_a_hanging_shadow_never_holds_an_answer(
        app_client: httpx.AsyncClient, labelled: FakeModelServer, rollout_file: Path) -> None:
    plan(rollout_file, shadow=100)
    release = asyncio.Event()
    answer = labelled.predict

    async def canary_hangs(signature: Signature, image: np.ndarray, label: str | None = None
                           ) -> ModelOutput:
        if label == "canary":
            await release.wait()
        return await answer(signature, image, label)

    labelled.predict = canary_hangs  # type: ignore[method-assign]
    dropped = _dropped()
    for _ in range(10):
        assert (await predict(app_client))["label"] == "stable"
    # SHADOW_MAX_CONCURRENT (4) shadow calls hang; the other six were dropped, not queued.
    assert _dropped() - dropped == 6
    release.set()  # let the lifespan's drain finish


async def test_a_failing_canary_is_answered_by_stable_and_counted(
        app_client: httpx.AsyncClient, labelled: FakeModelServer, rollout_file: Path) -> None:
    plan(rollout_file, canary=100)
    labelled.failing_labels["canary"] = ModelFailed("INTERNAL: canary broke")
    errors = sample("cassava_api_version_predictions_total", label="canary",
                    model_version="unknown", outcome="error") + sample(
        "cassava_api_version_predictions_total", label="canary", model_version="2",
        outcome="error")
    assert (await predict(app_client))["label"] == "stable"
    assert sample("cassava_api_version_predictions_total", label="canary",
                  model_version="unknown", outcome="error") + sample(
        "cassava_api_version_predictions_total", label="canary", model_version="2",
        outcome="error") == errors + 1


async def test_a_shadow_canary_that_fails_never_fails_the_answer(
        app_client: httpx.AsyncClient, labelled: FakeModelServer, rollout_file: Path) -> None:
    plan(rollout_file, shadow=100)
    del labelled.labels["canary"]  # e.g. the label is not in the model server's config yet
    errors = sample("cassava_api_shadow_skipped_total", reason="error")
    for _ in range(3):
        assert (await predict(app_client))["label"] == "stable"
    await wait_until_async(
        lambda: sample("cassava_api_shadow_skipped_total", reason="error") - errors
        + _dropped() >= 3, 10, "3 failed shadow calls counted", every=0.01)
    assert sample("cassava_api_shadow_skipped_total", reason="error") > errors
