"""atheris harness for app.imaging.image_to_tensor (coverage-guided, libFuzzer underneath).

Run by tests/api_service/test_imaging_fuzz.py for a bounded time; by hand:
    .venv/bin/python tests/api_service/fuzz_imaging.py -max_total_time=600 CORPUS_DIR
Anything but a tensor or an ImageRejected is a crash; libFuzzer writes the input that caused it to
-artifact_prefix, and it becomes a regression case in tests/api_service/fuzz_regressions/."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "api.service"))

with atheris.instrument_imports():
    from PIL import JpegImagePlugin, PngImagePlugin  # noqa: F401  (instrumented parsers)

    from app.imaging import ImageRejected, image_to_tensor

# Small limits keep each input fast (the API's own limits are larger; the code paths are the same).
LIMITS = {"height": 150, "width": 150, "max_pixels": 4_000_000,
          "max_decode_bytes": 64 * 1024 * 1024, "min_short_side": 32, "min_spread": 0.015}


def check(data: bytes) -> None:
    """One input: a (1, 150, 150, 3) float32 tensor in [0, 1], or ImageRejected."""
    try:
        tensor = image_to_tensor(data, **LIMITS)
    except ImageRejected:
        return
    assert tensor.shape == (1, 150, 150, 3) and tensor.dtype.name == "float32"
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
