"""leafsynth: the synthetic-leaf generator (demo model training data, test fixtures)."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

import leafsynth
from tests.support.paths import SCRIPTS_DIR


def test_classes_are_the_models_output_order():
    assert leafsynth.CLASSES == ("CBB", "CBSD", "CGM", "CMD", "Healthy")


@pytest.mark.parametrize("label", leafsynth.CLASSES)
def test_every_class_renders_an_rgb_image_of_the_default_size(label):
    image = leafsynth.render(label, seed=3)
    assert image.mode == "RGB"
    assert image.size == (512, 512)
    pixels = np.asarray(image)
    assert pixels.std() > 10, "a blank or flat image is no leaf photo"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_same_seed_gives_the_same_bytes(fmt):
    for label in leafsynth.CLASSES:
        first = leafsynth.encode(leafsynth.render(label, 11, (320, 240)), fmt)
        second = leafsynth.encode(leafsynth.render(label, 11, (320, 240)), fmt)
        assert first == second, label


def test_seeds_and_classes_give_different_images():
    images = {(label, seed): np.asarray(leafsynth.render(label, seed, (128, 128)), np.int16)
              for label in leafsynth.CLASSES for seed in (1, 2)}
    keys = list(images)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert np.abs(images[a] - images[b]).mean() > 2, (a, b)


@pytest.mark.parametrize("size", [(1, 1), (37, 23), (150, 150), (800, 600), (600, 800),
                                  (4000, 3000)])
def test_any_size(size):
    image = leafsynth.render("CMD", 5, size)
    assert image.size == size
    assert image.mode == "RGB"


def test_large_images_are_resized_from_the_working_size():
    """4000x3000 is drawn at WORK_MAX and scaled: the same picture as a small render."""
    big = leafsynth.render("CBSD", 8, (4000, 3000))
    work = leafsynth.render("CBSD", 8, (leafsynth.WORK_MAX, leafsynth.WORK_MAX * 3 // 4))
    small = np.asarray(big.resize(work.size, Image.Resampling.BILINEAR), np.int16)
    assert np.abs(small - np.asarray(work, np.int16)).mean() < 6


def test_png_is_lossless_and_jpeg_honours_pillow_options():
    image = leafsynth.render("CGM", 21, (200, 160))
    png = leafsynth.encode(image, "PNG")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), np.asarray(image))
    low = leafsynth.encode(image, "JPEG", quality=30)
    high = leafsynth.encode(image, "jpeg", quality=95)
    assert low.startswith(b"\xff\xd8\xff") and high.startswith(b"\xff\xd8\xff")
    assert len(low) < len(high)
    with Image.open(io.BytesIO(high)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (200, 160)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown label"):
        leafsynth.render("Rust", 1)
    with pytest.raises(ValueError, match="size"):
        leafsynth.render("CBB", 1, (0, 10))
    with pytest.raises(ValueError, match="JPEG or PNG"):
        leafsynth.encode(leafsynth.render("CBB", 1, (8, 8)), "GIF")


def test_generate_leaves_writes_count_per_class(tmp_path):
    result = subprocess.run(
        [SCRIPTS_DIR / "generate-leaves", tmp_path, "--count", "2", "--size", "90x60",
         "--format", "png", "--seed", "40"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    assert files == sorted(f"{c}/{c}-{s}.png" for c in leafsynth.CLASSES for s in (40, 41))
    with Image.open(tmp_path / "CMD" / "CMD-41.png") as image:
        assert image.size == (90, 60)
        np.testing.assert_array_equal(np.asarray(image),
                                      np.asarray(leafsynth.render("CMD", 41, (90, 60))))


def test_generate_leaves_rejects_a_bad_size(tmp_path):
    result = subprocess.run([SCRIPTS_DIR / "generate-leaves", tmp_path, "--size", "big"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "WIDTHxHEIGHT" in result.stderr
