"""The page's preprocessing (ui.service/html/preprocess.js) run by Node is Pillow's, byte for byte:
the same BICUBIC resize (sizes up and down, odd ratios, 12 MP-like reductions), the same white
background under transparency, the same float32 scaling as api.service/app/imaging.py."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.ui_service.browsing import HTML_DIR

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is installed by scripts/bootstrap")

# Reads {"fn", "args"} and the pixels (stdin, after a newline), answers the result's bytes.
_RUNNER = """
import * as pre from %s;
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const all = Buffer.concat(chunks);
const cut = all.indexOf(10);
const {fn, args} = JSON.parse(all.subarray(0, cut).toString());
const pixels = new Uint8Array(all.subarray(cut + 1));
const out = pre[fn](pixels, ...args);
process.stdout.write(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
"""


def run_js(fn: str, pixels: np.ndarray, *args: int) -> bytes:
    script = _RUNNER % json.dumps((HTML_DIR / "preprocess.js").as_uri())
    header = json.dumps({"fn": fn, "args": list(args)}).encode() + b"\n"
    done = subprocess.run([NODE, "--input-type=module", "-e", script], check=True,  # type: ignore[list-item]
                          input=header + pixels.tobytes(), capture_output=True, timeout=60)
    return done.stdout


@pytest.mark.parametrize(("size", "target"), [
    ((800, 600), (150, 150)),    # the fixture photos' size
    ((600, 800), (150, 150)),    # portrait
    ((150, 150), (150, 150)),    # already the model's size: unchanged
    ((97, 61), (150, 150)),      # enlarged
    ((1001, 149), (150, 150)),   # one side up, one down
    ((2016, 1512), (150, 150)),  # a large camera photo: long kernels (13x reduction)
    ((512, 384), (150, 113)),    # not square
])
def test_the_resize_is_pillows_bicubic_byte_for_byte(size: tuple[int, int],
                                                      target: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    # Smooth areas and hard edges: noise on a gradient, so rounding at every tap is exercised.
    width, height = size
    ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    pixels = np.clip(ramp + rng.normal(0, 60, (height, width, 3)), 0, 255).astype(np.uint8)
    want = np.asarray(Image.fromarray(pixels, "RGB").resize(target, Image.Resampling.BICUBIC))
    got = np.frombuffer(run_js("resizeBicubic", pixels, width, height, *target), np.uint8)
    assert np.array_equal(got.reshape(want.shape), want)


def test_transparency_becomes_white_as_the_api_pastes_it() -> None:
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    image = Image.fromarray(rgba, "RGBA")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    got = np.frombuffer(run_js("rgbaToRgbOnWhite", rgba), np.uint8).reshape(40, 30, 3)
    assert np.array_equal(got, np.asarray(background))


def test_the_input_is_the_apis_float32_scaling() -> None:
    values = np.arange(256, dtype=np.uint8).repeat(3)
    got = np.frombuffer(run_js("toUnitFloat", values), np.float32)
    want = np.empty(values.shape, np.float32)
    np.divide(values, np.float32(255.0), out=want, dtype=np.float32)
    assert np.array_equal(got, want)
