"""scripts/train-demo-model end to end on a tiny data set: it trains, publishes a loadable
version with labels beside it, numbers the next run 2, and never overwrites a version."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import SCRIPTS_DIR
from training.card import read_cards
from training.export import load_signature
from training.labels import LABELS
from training.repository import versions
from training.train import INPUT_KEY, OUTPUT_KEY

pytestmark = pytest.mark.slow
TINY = ("--per-class", "4", "--val-per-class", "1", "--epochs", "1", "--processes", "1")


def train(repository: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPTS_DIR / "train-demo-model", "--repository", str(repository),
                           *TINY, *args], capture_output=True, text=True, timeout=600)


def test_trains_and_publishes_successive_versions(tmp_path):
    first = train(tmp_path, "--report", str(tmp_path / "report.json"))
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["train_images"] == 20 and report["validation_images"] == 5
    assert report["export_max_abs_diff"] <= 1e-5
    assert json.loads((tmp_path / "cassava" / "labels.json").read_text()) == LABELS
    card = read_cards(tmp_path / "cassava")["1"]
    assert card["demo"] is True
    assert card["metrics"][0]["value"] == report["validation_accuracy"]
    # One epoch on 20 leaves learns next to nothing: its near-uniform answers may or may not
    # survive the on-device gate, but either way the command says so and the card agrees.
    artifact = tmp_path / "cassava" / "1" / "assets.extra" / "model.tflite"
    assert "on-device model: " in first.stderr
    assert ("on_device" in card) == artifact.is_file() == (report["on_device"] is not None)
    session, inputs, outputs, method = load_signature(tmp_path / "cassava" / "1")
    session.close()
    assert (list(inputs), list(outputs), method) == (
        [INPUT_KEY], [OUTPUT_KEY], "tensorflow/serving/predict")

    second = train(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert versions(tmp_path / "cassava") == [1, 2]
    assert list(read_cards(tmp_path / "cassava")) == ["1", "2"]


def test_refuses_an_existing_version_before_training(tmp_path):
    (tmp_path / "cassava" / "1").mkdir(parents=True)
    result = train(tmp_path, "--version", "1")
    assert result.returncode == 1
    assert "version 1 already exists" in result.stderr
    assert not list((tmp_path / "cassava" / "1").iterdir())
