"""The on-device artifact of a published version: a TensorFlow Lite flatbuffer that phones (LiteRT
on Android and iOS), the page and the survey tool run instead of asking the server.

Where it lives: `<model dir>/<version>/assets.extra/model.tflite`. `assets.extra/` is the
SavedModel directory's place for files that "co-exist with the model but are not loaded by the
graph" (TF Serving reads only its warm-up file there; our model server only the SavedModel), so
every server keeps serving the version unchanged, and removing a version removes its artifact.

It is published only if it answers like the SavedModel (the fidelity gate): on the fixture photos
beside the repository, a few synthetic leaves and any photos the operator names, each decoded by
the API's own preprocessing (app.imaging, the one copy), the top class must be the same and every
probability within TOLERANCE. Its SHA-256, size and quantisation go into the version's card.

`python -m training.on_device REPOSITORY --version N` (scripts/make-on-device-model) makes one for
a version already in a repository.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from training.card import minimal_card, read_cards, write_card
from training.repository import PublishError, write_atomically

ARTIFACT = Path("assets.extra") / "model.tflite"
QUANTIZATIONS = ("dynamic_range", "float16", "float32")
# Measured on the fixture photos for the demo and the article's model (docs/mobile.md): half the
# size of float16 and well inside the tolerance.
DEFAULT_QUANTIZATION = "dynamic_range"
TOLERANCE = 0.02
REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PHOTOS = REPO_ROOT.parent / "shared" / "fixtures" / "leaf-photos"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
# The API's pixel cap (Settings.MAX_IMAGE_PIXELS): a photo the API refuses is no evidence here.
MAX_PIXELS = 50_000_000
# Synthetic leaves checked besides the photos (one per class, at a size training never rendered),
# so a repository without ../shared still has evidence. 320x240: a quarter of 640x480's 3.4 s.
SYNTHETIC_SEED, SYNTHETIC_SIZE = 3_000_000_000, (320, 240)


class OnDeviceError(PublishError):
    """No artifact for this version (the message says why); the server version is unaffected."""


class FidelityError(OnDeviceError):
    """The artifact does not answer like the SavedModel."""


@dataclass(frozen=True)
class Evidence:
    """The inputs the gate compares on: names and one (n, h, w, 3) float32 batch."""

    names: list[str]
    batch: np.ndarray


def convert(saved_model: Path, quantization: str = DEFAULT_QUANTIZATION) -> bytes:
    """The SavedModel's serving_default signature as a TFLite flatbuffer (input [1, h, w, 3]).

    TF1's converter: it loads through the v1 SignatureDef loader, the one that reads every model
    TF Serving does (the article's TF 2.4 SavedModel fails in TF2's from_saved_model)."""
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise OnDeviceError(f"quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)}")
    tf.get_logger().setLevel("ERROR")  # TF1's converter warns about TF1 on every graph function
    try:
        converter = tf.compat.v1.lite.TFLiteConverter.from_saved_model(
            str(saved_model), tag_set={"serve"}, signature_key="serving_default")
        # Batch 1 in the signature too, not only in the shape: LiteRT.js (the page's runtime)
        # refuses a [1, h, w, 3] tensor for a [-1, h, w, 3] signature. (What input_shapes= does;
        # the converter has no public accessor for the shapes it would need.)
        for tensor in converter._input_tensors:
            tensor.set_shape([1, *tensor.shape[1:]])
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()
    except Exception as exc:  # the converter reports unsupported graphs through many types
        raise OnDeviceError(f"cannot convert {saved_model} to TensorFlow Lite: "
                            f"{type(exc).__name__}: {str(exc)[:300]}") from exc


def run_tflite(content: bytes, batch: np.ndarray) -> np.ndarray:
    """Probabilities of each image in batch, one invoke per image (the artifact takes one)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    (feed,), (fetch,) = interpreter.get_input_details(), interpreter.get_output_details()
    rows = []
    for image in batch:
        interpreter.set_tensor(feed["index"], image[np.newaxis])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(fetch["index"])[0].copy())
    return np.stack(rows)


def run_saved_model(saved_model: Path, batch: np.ndarray) -> np.ndarray:
    """Probabilities from the SavedModel loaded the way TF Serving loads it."""
    from training.export import load_signature

    session, inputs, outputs, _method = load_signature(saved_model)
    try:
        (feed,), (fetch,) = inputs.values(), outputs.values()
        return np.asarray(session.run(fetch, {feed: batch}))
    finally:
        session.close()


def input_size(content: bytes) -> tuple[int, int]:
    """(height, width) of the artifact's image input."""
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_content=content).get_input_details()[0]["shape"]
    if len(shape) != 4 or shape[3] != 3:
        raise OnDeviceError(f"the model's input is {list(shape)}, not [1, height, width, 3]")
    return int(shape[1]), int(shape[2])


def photo_files(directories: list[Path]) -> list[Path]:
    """JPEG/PNG files directly in each directory (sorted); a missing directory is an error."""
    files: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            raise OnDeviceError(f"--photos {directory}: not a directory")
        found = sorted(p for p in directory.iterdir()
                       if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
        if not found:
            raise OnDeviceError(f"--photos {directory}: no .jpg, .jpeg or .png file in it")
        files += found
    return files


def evidence(photos: list[Path], height: int, width: int, synthetic: bool = True) -> Evidence:
    """The gate's inputs: each photo through the API's preprocessing, plus one synthetic leaf per
    class (JPEG-encoded, so they take the same path)."""
    from app.imaging import ImageRejected, image_to_tensor

    names, tensors = [], []

    def add(name: str, data: bytes) -> None:
        try:
            tensors.append(image_to_tensor(data, height=height, width=width,
                                           max_pixels=MAX_PIXELS))
        except ImageRejected as exc:
            raise OnDeviceError(f"{name}: the API would refuse it: {exc}") from None
        names.append(name)

    for photo in photos:
        add(str(photo), photo.read_bytes())
    if synthetic:
        for name, data in synthetic_leaves():
            add(name, data)
    return Evidence(names, np.concatenate(tensors))


@cache
def synthetic_leaves() -> tuple[tuple[str, bytes], ...]:
    """One leafsynth leaf per class as JPEG bytes (rendered once per process)."""
    import leafsynth

    return tuple((f"synthetic {label} leaf", leafsynth.encode(
        leafsynth.render(label, SYNTHETIC_SEED + index, SYNTHETIC_SIZE), "JPEG", quality=85))
        for index, label in enumerate(leafsynth.CLASSES))


def compare(names: list[str], reference: np.ndarray, candidate: np.ndarray,
            tolerance: float = TOLERANCE) -> float:
    """The largest |difference| of any probability; FidelityError naming the first image whose
    top class differs or whose probabilities drift more than tolerance."""
    if reference.shape != candidate.shape:
        raise FidelityError(f"the artifact answers with shape {candidate.shape}, the SavedModel "
                            f"with {reference.shape}")
    for name, ref, got in zip(names, reference, candidate, strict=True):
        if int(ref.argmax()) != int(got.argmax()):
            raise FidelityError(f"{name}: the artifact's top class is {int(got.argmax())}, the "
                                f"SavedModel's {int(ref.argmax())}")
        drift = float(np.abs(ref - got).max())
        if not drift <= tolerance:  # NaN fails too
            raise FidelityError(f"{name}: a probability differs by {drift:.4f} from the "
                                f"SavedModel's (at most {tolerance} allowed)")
    return float(np.abs(reference - candidate).max())


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def build(saved_model: Path, photo_dirs: list[Path], quantization: str = DEFAULT_QUANTIZATION,
          tolerance: float = TOLERANCE) -> tuple[bytes, dict]:
    """Convert and gate: (flatbuffer, card entry). Raises OnDeviceError / FidelityError."""
    content = convert(saved_model, quantization)
    height, width = input_size(content)
    photos = photo_files([FIXTURE_PHOTOS] if FIXTURE_PHOTOS.is_dir() else []) + \
        photo_files(photo_dirs)
    checked = evidence(photos, height, width)
    drift = compare(checked.names, run_saved_model(saved_model, checked.batch),
                    run_tflite(content, checked.batch), tolerance)
    entry = {
        "format": "tflite", "file": ARTIFACT.as_posix(), "sha256": sha256_hex(content),
        "bytes": len(content), "quantization": quantization,
        "fidelity": {"images": len(checked.names), "photos": len(photos),
                     "max_abs_diff": round(drift, 6), "tolerance": tolerance,
                     "top_class": "same on every image"},
    }
    return content, entry


def write_artifact(version_dir: Path, content: bytes) -> Path:
    """<version_dir>/assets.extra/model.tflite, atomically."""
    return write_atomically(version_dir / ARTIFACT, content)


def publish(version_dir: Path, photo_dirs: list[Path], quantization: str = DEFAULT_QUANTIZATION,
            log=print) -> dict | None:
    """At publish time, on the staged SavedModel: write the artifact and return its card entry,
    or say why not (one line) and return None; the server version publishes either way."""
    (version_dir / ARTIFACT).unlink(missing_ok=True)  # a copied SavedModel's own, unchecked
    try:
        content, entry = build(version_dir, photo_dirs, quantization)
        write_artifact(version_dir, content)
    except OnDeviceError as exc:
        log(f"on-device model: NOT published: {exc}")
        return None
    except Exception as exc:  # the server version publishes whatever the converter does
        log(f"on-device model: NOT published: {type(exc).__name__}: {exc}")
        return None
    log(f"on-device model: {ARTIFACT.as_posix()} ({entry['quantization']}, "
        f"{entry['bytes']:,} bytes, SHA-256 {entry['sha256']}; max |dp| "
        f"{entry['fidelity']['max_abs_diff']:.4f} on {entry['fidelity']['images']} images)")
    return entry


def make_for_version(model_dir: Path, version: int, photo_dirs: list[Path],
                     quantization: str = DEFAULT_QUANTIZATION) -> dict:
    """Build, gate and write the artifact of a version already in model_dir, and record it in
    that version's card (a minimal card when it has none). Raises OnDeviceError."""
    version_dir = model_dir / str(version)
    if not (version_dir / "saved_model.pb").is_file():
        raise OnDeviceError(f"{version_dir} is not a published version (no saved_model.pb)")
    cards = read_cards(model_dir)
    content, entry = build(version_dir, photo_dirs, quantization)
    card = cards.get(str(version)) or minimal_card(version_dir)
    try:
        write_artifact(version_dir, content)
    except OSError as exc:  # a read-only repository, a file where assets.extra/ goes, a full disk
        raise OnDeviceError(f"cannot write {version_dir / ARTIFACT}: "
                            f"{exc.strerror or exc}") from None
    write_card(model_dir, version, {**card, "on_device": entry})
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make-on-device-model",
        description="Make the on-device (TensorFlow Lite) artifact of a version already in a "
                    "model repository, check it answers like the SavedModel, and record it in "
                    "the version's model card.")
    parser.add_argument("repository", type=Path,
                        help="model repository (e.g. model.service/models)")
    parser.add_argument("--name", default="cassava", help="model name (default: cassava)")
    parser.add_argument("--version", type=int, help="version (default: the highest)")
    parser.add_argument("--photos", type=Path, action="append", default=[],
                        help="also check on the photos in this directory (repeatable)")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=DEFAULT_QUANTIZATION,
                        help=f"weights (default: {DEFAULT_QUANTIZATION}; docs/mobile.md)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, '_', '-', '.'")
    from training.repository import versions

    model_dir = args.repository / args.name
    version = args.version if args.version is not None else max(versions(model_dir), default=None)
    try:
        if version is None:
            raise OnDeviceError(f"{model_dir} holds no version")
        entry = make_for_version(model_dir, version, args.photos, args.quantization)
    except PublishError as exc:
        print(f"make-on-device-model: error: {exc}", file=sys.stderr)
        return 1
    print(f"make-on-device-model: wrote {model_dir / str(version) / ARTIFACT} "
          f"({entry['quantization']}, {entry['bytes']:,} bytes, SHA-256 {entry['sha256']}; "
          f"max |dp| {entry['fidelity']['max_abs_diff']:.4f} on "
          f"{entry['fidelity']['images']} images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
