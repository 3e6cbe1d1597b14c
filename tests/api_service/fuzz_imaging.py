"""atheris harness for app.imaging.image_to_tensor (coverage-guided, libFuzzer underneath).

Run by tests/api_service/test_imaging_fuzz.py for a bounded time; by hand:
    .venv/bin/python tests/api_service/fuzz_imaging.py -max_total_time=600 CORPUS_DIR
Anything but a tensor or an ImageRejected is a crash (tests/api_service/fuzz_target.py); libFuzzer
writes the input that caused it to -artifact_prefix, and it becomes a regression case in
tests/api_service/fuzz_regressions/."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "api.service")]

with atheris.instrument_imports():  # app.imaging and Pillow's JPEG and PNG parsers
    from PIL import JpegImagePlugin, PngImagePlugin  # noqa: F401

    from tests.api_service.fuzz_target import check


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
