"""The on-device artifact at publish time (training/on_device.py): the fidelity gate's rule, the
artifact written into assets.extra/ with its card entry, a failing gate that publishes the server
version without it, and scripts/make-on-device-model for a version already in a repository."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from model_server.repository import scan_versions
from tests.support.paths import LEAF_PHOTOS_DIR, SCRIPTS_DIR, SEED_MODEL_BASE_PATH
from training import on_device
from training.card import read_cards
from training.on_device import ARTIFACT, FidelityError, OnDeviceError, compare, photo_files

NAMES = ["a.jpg", "b.jpg"]
REFERENCE = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.2, 0.5, 0.1, 0.1, 0.1]], np.float32)


# --- the gate's rule (pure) --------------------------------------------------------------------

def test_answers_within_the_tolerance_pass_with_their_largest_drift() -> None:
    candidate = REFERENCE + np.float32(0.015) * np.array([1, -1, 0, 0, 0], np.float32)
    assert compare(NAMES, REFERENCE, candidate) == pytest.approx(0.015, abs=1e-6)


@pytest.mark.parametrize("change, message", [
    (lambda p: p[:, ::-1].copy(), "a.jpg: the artifact's top class is 4, the SavedModel's 0"),
    (lambda p: p + np.float32(0.021) * np.eye(5, dtype=np.float32)[[2, 2]],
     "a.jpg: a probability differs by 0.0210 from the SavedModel's (at most 0.02 allowed)"),
    (lambda p: np.where(np.arange(5) == 4, np.nan, p).astype(np.float32),
     "a.jpg: the artifact's top class is 4"),  # numpy's argmax finds the NaN
])
def test_another_top_class_or_a_larger_drift_fails(change, message: str) -> None:
    with pytest.raises(FidelityError) as failure:
        compare(NAMES, REFERENCE, change(REFERENCE))
    assert str(failure.value).startswith(message)


def test_the_second_photo_is_checked_too() -> None:
    candidate = REFERENCE.copy()
    candidate[1] = [0.45, 0.3, 0.1, 0.1, 0.05]
    with pytest.raises(FidelityError, match=r"b\.jpg: the artifact's top class is 0"):
        compare(NAMES, REFERENCE, candidate)


def test_photo_directories_must_hold_photos(tmp_path: Path) -> None:
    with pytest.raises(OnDeviceError, match="not a directory"):
        photo_files([tmp_path / "absent"])
    (tmp_path / "notes.txt").write_text("no photo")
    with pytest.raises(OnDeviceError, match=r"no \.jpg, \.jpeg or \.png file"):
        photo_files([tmp_path])
    assert photo_files([LEAF_PHOTOS_DIR]) == sorted(LEAF_PHOTOS_DIR.glob("*.jpg"))


# --- publishing (TensorFlow converts and runs the SavedModel) ----------------------------------

def seed_repository(root: Path) -> Path:
    """A repository with the article's SavedModel as version 1, no card, no artifact."""
    model_dir = root / "cassava"
    shutil.copytree(SEED_MODEL_BASE_PATH / "1", model_dir / "1")
    return model_dir


def run_script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPTS_DIR / name, *map(str, args)], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def article(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The article's model made on-device by the real command, with one more photo directory and
    float16 weights (tests/stack/test_on_device.py serves the default, dynamic range)."""
    model_dir = seed_repository(tmp_path_factory.mktemp("article"))
    extra = tmp_path_factory.mktemp("operator-photos")
    shutil.copy(sorted(LEAF_PHOTOS_DIR.glob("*.jpg"))[0], extra / "mine.jpg")
    result = run_script("make-on-device-model", model_dir.parent, "--photos", extra,
                        "--quantization", "float16")
    assert result.returncode == 0, result.stderr
    assert "assets.extra/model.tflite (float16" in result.stdout
    return model_dir


@pytest.mark.tensorflow
@pytest.mark.slow
def test_the_artifact_and_its_card_entry(article: Path) -> None:
    content = (article / "1" / ARTIFACT).read_bytes()
    card = read_cards(article)["1"]
    entry = card["on_device"]
    assert entry["file"] == "assets.extra/model.tflite" and entry["format"] == "tflite"
    assert (entry["sha256"], entry["bytes"]) == (hashlib.sha256(content).hexdigest(),
                                                 len(content))
    assert entry["quantization"] == "float16"
    photos = len(list(LEAF_PHOTOS_DIR.glob("*.jpg")))
    assert entry["fidelity"]["photos"] == photos + 1  # the fixtures and the operator's
    assert entry["fidelity"]["images"] == photos + 1 + 5  # and a synthetic leaf per class
    assert 0 < entry["fidelity"]["max_abs_diff"] <= 0.02
    assert "no model card was supplied" in card["description"]  # it had none: a minimal one
    # TF Serving's layout is untouched: the version is still version 1, complete.
    assert scan_versions(article) == {1: article / "1"}


@pytest.mark.tensorflow
@pytest.mark.slow
def test_the_artifact_takes_one_image_in_its_signature_too(article: Path) -> None:
    """LiteRT.js (the page's runtime) matches tensors against the signature: [-1, ...] there
    refuses the page's [1, 150, 150, 3] input (docs/ui.md)."""
    from ai_edge_litert.interpreter import Interpreter

    (feed,) = Interpreter(model_path=str(article / "1" / ARTIFACT)).get_input_details()
    assert list(feed["shape_signature"]) == list(feed["shape"]) == [1, 150, 150, 3]


@pytest.mark.tensorflow
@pytest.mark.slow
def test_a_tighter_tolerance_fails_the_real_artifact(article: Path) -> None:
    """The gate compares real answers: float16 weights drift by more than 1e-6."""
    checked = on_device.evidence(photo_files([LEAF_PHOTOS_DIR]), 150, 150)
    answers = on_device.run_tflite((article / "1" / ARTIFACT).read_bytes(), checked.batch)
    reference = on_device.run_saved_model(article / "1", checked.batch)
    assert compare(checked.names, reference, answers) <= 0.02
    with pytest.raises(FidelityError, match="a probability differs by"):
        compare(checked.names, reference, answers, tolerance=1e-6)


@pytest.mark.tensorflow
@pytest.mark.slow
def test_a_failed_gate_publishes_the_version_without_artifact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.convert import convert

    def wrong(content: bytes, batch: np.ndarray) -> np.ndarray:
        return np.full((len(batch), 5), 0.2, np.float32)  # an artifact that learnt nothing

    monkeypatch.setattr(on_device, "run_tflite", wrong)
    lines: list[str] = []
    version_dir = convert(SEED_MODEL_BASE_PATH / "1", tmp_path / "cassava", log=lines.append)
    assert (lines[0].startswith("on-device model: NOT published: ")
            and "top class" in lines[0]), lines
    assert scan_versions(tmp_path / "cassava") == {1: version_dir}
    assert not (version_dir / ARTIFACT.parent).exists()
    assert "on_device" not in read_cards(tmp_path / "cassava")["1"]


@pytest.mark.tensorflow
@pytest.mark.slow
def test_an_unwritable_version_is_one_line_and_leaves_the_card(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = seed_repository(tmp_path)
    (model_dir / "1" / "assets.extra").write_text("a file where the directory goes")
    assert on_device.main([str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("make-on-device-model: error: cannot write ")
    assert len(error.strip().splitlines()) == 1
    assert not (model_dir / "model.json").exists()


def test_a_wrong_photos_directory_publishes_nothing(tmp_path: Path) -> None:
    result = run_script("convert-model", SEED_MODEL_BASE_PATH / "1", tmp_path, "--photos",
                        tmp_path / "absent")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"convert-model: error: --photos {tmp_path / 'absent'}: not a directory")
    assert not (tmp_path / "cassava").exists()


@pytest.mark.parametrize("args, message", [
    (["--version", "3"], "is not a published version (no saved_model.pb)"),
    (["--name", "empty"], "holds no version"),
])
def test_make_on_device_model_errors_are_one_line(tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "cassava" / "1").mkdir(parents=True)
    result = run_script("make-on-device-model", tmp_path, *args)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert json.dumps(result.stdout) == '""'
