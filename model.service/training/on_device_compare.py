"""Measure the on-device quantisations side by side: `python -m training.on_device_compare
SAVED_MODEL_DIR...` converts each SavedModel with every quantisation, runs the gate's images
(fixture photos, synthetic leaves) through the SavedModel and through each artifact with
ai-edge-litert, and prints a Markdown table: size, largest |difference| of any probability, top
class agreement, median milliseconds per image (one thread). docs/mobile.md records its output."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from training.on_device import (
    FIXTURE_PHOTOS,
    QUANTIZATIONS,
    convert,
    evidence,
    input_size,
    photo_files,
    run_saved_model,
    run_tflite,
)


def median_ms(content: bytes, image: np.ndarray, runs: int = 30) -> float:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    feed = interpreter.get_input_details()[0]["index"]
    times = []
    for _ in range(runs + 3):
        interpreter.set_tensor(feed, image[np.newaxis])
        started = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - started)
    return float(np.median(times[3:]) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="on_device_compare", description=__doc__.split("\n")[0])
    parser.add_argument("saved_models", type=Path, nargs="+", help="SavedModel version dirs")
    parser.add_argument("--photos", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    photos = photo_files(([FIXTURE_PHOTOS] if FIXTURE_PHOTOS.is_dir() else []) + args.photos)
    print("| model | quantisation | bytes | max abs diff | same top class | median ms/image |")
    print("|---|---|---:|---:|---|---:|")
    for saved_model in args.saved_models:
        for quantization in QUANTIZATIONS:
            content = convert(saved_model, quantization)
            height, width = input_size(content)
            checked = evidence(photos, height, width)
            reference = run_saved_model(saved_model, checked.batch)
            answers = run_tflite(content, checked.batch)
            same = int((reference.argmax(1) == answers.argmax(1)).sum())
            print(f"| {saved_model} | {quantization} | {len(content):,} | "
                  f"{float(np.abs(reference - answers).max()):.4f} | "
                  f"{same}/{len(answers)} | {median_ms(content, checked.batch[0]):.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
