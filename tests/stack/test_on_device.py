"""The on-device model through the real no-Docker stack (Traefik, the API, the model server over
gRPC), with the article's model made on-device by scripts/make-on-device-model: `on_device` and
the file on both hosts, `cassava-survey get-model` storing it once, and a reference run of that
file with ai-edge-litert in a process without TensorFlow giving the server's answers (same top
class, every probability within 0.02) on the fixture photos, as `diagnose --offline-model` does."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.litert_reference import client_env, device_probabilities
from tests.support.local_stack import API_HOST, UI_HOST, LocalStack, start_local_stack
from tests.support.on_device import article_repository
from tests.support.paths import REPO_ROOT, SEED_LABELS

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLI = REPO_ROOT / ".venv" / "bin" / "cassava-survey"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The article's SavedModel as version 1, its labels, and its on-device artifact."""
    return article_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def article_stack(repository: Path, logs_dir: Path) -> Iterator[LocalStack]:
    running = start_local_stack(logs_dir, model_base_path=repository, model_name="cassava")
    yield running
    running.stop()


def survey(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=client_env())


@pytest.mark.parametrize("host, prefix", [(API_HOST, ""), (UI_HOST, "/api")])
def test_both_hosts_offer_the_verified_file(article_stack: LocalStack, repository: Path,
                                            host: str, prefix: str) -> None:
    entry = json.loads((repository / "cassava" / "model.json").read_text())["versions"]["1"][
        "on_device"]
    described = article_stack.get(host, f"{prefix}/v1/model")
    assert described.status_code == 200, described.text
    on_device = described.json()["on_device"]
    assert on_device == {
        "format": "tflite", "sha256": entry["sha256"], "bytes": entry["bytes"],
        "quantization": "dynamic_range", "version": 1,
        "url": f"/v1/model/versions/1/on-device/{entry['sha256']}.tflite"}
    reply = article_stack.get(host, prefix + on_device["url"])
    assert reply.status_code == 200
    assert hashlib.sha256(reply.content).hexdigest() == entry["sha256"]
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert reply.headers["etag"] == f'"{entry["sha256"]}"'
    again = article_stack.get(host, prefix + on_device["url"],
                      headers={"If-None-Match": reply.headers["etag"]})
    assert again.status_code == 304
    wrong = article_stack.get(host,
                              prefix + on_device["url"].replace(entry["sha256"], "0" * 64))
    assert (wrong.status_code, wrong.json()["code"]) == (404, "on_device_model_not_found")


def test_the_device_gives_the_servers_answers(article_stack: LocalStack, tmp_path: Path,
                                             leaf_photo_paths: list[Path]) -> None:
    api = f"http://{API_HOST}:{article_stack.port}"
    stored = survey("get-model", "--api", api, "--out", tmp_path / "pack")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.startswith("stored cassava version 1 ")
    again = survey("get-model", "--api", api, "--out", tmp_path / "pack")
    assert again.stdout.startswith("already stored cassava version 1 "), again.stderr

    device = device_probabilities(tmp_path / "pack", leaf_photo_paths)
    labels = [label["code"] for label in json.loads(SEED_LABELS.read_text())]
    for photo in leaf_photo_paths:
        reply = article_stack.predict(API_HOST, "/predict/image", photo)
        assert reply.status_code == 200, reply.text
        server = {p["code"]: p["probability"] for p in reply.json()["probabilities"]}
        on_phone = dict(zip(labels, device[photo.name], strict=True))
        assert max(on_phone, key=on_phone.__getitem__) == reply.json()["code"], photo.name
        assert max(abs(server[code] - on_phone[code]) for code in labels) <= 0.02, photo.name


def test_diagnose_offline_and_online_agree(article_stack: LocalStack, tmp_path: Path,
                                           leaf_photo_paths: list[Path]) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in leaf_photo_paths:
        shutil.copy(photo, photos)
    api = f"http://{API_HOST}:{article_stack.port}"
    results: dict[str, list[dict[str, str]]] = {}
    for source, option in (("server", ["--api", api]), ("device", ["--offline-model", api])):
        out = tmp_path / f"{source}.csv"
        run = survey("diagnose", photos, *option, "--out", out)
        assert run.returncode == 0, run.stderr
        with out.open(newline="") as file:
            results[source] = sorted(csv.DictReader(file), key=lambda row: row["file"])
    assert [row["source"] for row in results["server"]] == ["server"] * len(leaf_photo_paths)
    assert [row["source"] for row in results["device"]] == ["device"] * len(leaf_photo_paths)
    for online, offline in zip(results["server"], results["device"], strict=True):
        assert (offline["code"], offline["model_version"]) == (online["code"],
                                                               online["model_version"])
        assert abs(float(offline["confidence"]) - float(online["confidence"])) <= 0.02
