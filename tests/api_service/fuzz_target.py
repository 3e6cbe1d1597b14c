"""What the atheris harness (fuzz_imaging.py) checks for one input, importable without atheris:
the regression cases replay through the same function."""

from __future__ import annotations

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
