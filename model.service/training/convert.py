"""scripts/convert-model: a Keras .h5/.keras file (or a SavedModel directory) -> the next version
of a model in a TF Serving repository, published atomically, never overwriting a version.

Keras 3 (the `keras` TensorFlow 2.21 ships with) reads the article's Keras 2 / TF 2.4 HDF5 file
faithfully: its predictions equal the article's own SavedModel bit for bit, so no tf-keras.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import warnings
from pathlib import Path

from training.card import check_card, minimal_card, read_cards, write_card
from training.on_device import DEFAULT_QUANTIZATION, QUANTIZATIONS, photo_files
from training.on_device import publish as publish_on_device
from training.repository import (
    PublishError,
    VersionExistsError,
    publish_version,
    read_labels,
    write_labels,
)

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
# Keras 3 names unnamed symbolic tensors "keras_tensor_<n>": not worth showing to clients.
_ANONYMOUS = re.compile(r"^keras_tensor(_\d+)?$")


def load_keras(source: Path):
    """The model in a Keras file, as Keras itself loads it (no training configuration)."""
    import keras

    try:
        with warnings.catch_warnings():
            # Keras 2 Sequential configs carry `input_shape` on the first layer; Keras 3 warns.
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`",
                                    category=UserWarning)
            return keras.models.load_model(source, compile=False)
    except Exception as exc:  # h5py, zipfile, JSON and Keras errors all mean "cannot read"
        raise PublishError(f"cannot load a Keras model from {source}: "
                           f"{type(exc).__name__}: {exc}") from exc


def signature_keys(model) -> tuple[str, str]:
    """Input and output names the way Keras 2 named them (a Sequential's input is
    '<first layer>_input', its output the last layer's name), so converted article models keep
    `conv2d_4_input` / `dense_3`."""
    input_key = model.inputs[0].name
    if _ANONYMOUS.match(input_key):
        input_key = "input"
    output_names = list(getattr(model, "output_names", None) or [])
    output_key = output_names[0] if output_names else model.layers[-1].name
    if _ANONYMOUS.match(output_key):
        output_key = model.layers[-1].name
    return input_key, output_key


def _output_classes(model) -> int | None:
    shape = model.outputs[0].shape
    return int(shape[-1]) if shape[-1] is not None else None


def _check_saved_model(source: Path) -> int | None:
    """Load a SavedModel directory as TF Serving would; return its output width if known."""
    from training.export import load_signature

    if not any((source / f).is_file() for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise PublishError(f"{source} is not a SavedModel directory (no saved_model.pb)")
    try:
        session, _inputs, outputs, method = load_signature(source)
    except Exception as exc:
        raise PublishError(f"cannot load SavedModel {source} with the serve tag and a "
                           f"serving_default signature: {type(exc).__name__}: {exc}") from exc
    try:
        if method != "tensorflow/serving/predict":
            raise PublishError(f"{source}: serving_default is {method!r}, not a predict signature")
        if len(outputs) != 1:
            return None
        (name,) = outputs.values()
        dim = session.graph.get_tensor_by_name(name).shape[-1]
        return int(dim) if dim is not None else None
    finally:
        session.close()


def convert(source: Path, model_dir: Path, labels: Path | None = None,
            version: int | None = None, card: dict | None = None,
            photos: list[Path] | None = None, quantization: str = DEFAULT_QUANTIZATION,
            log=print) -> Path:
    """Publish `source` as a new version under model_dir, with its labels, its model card
    (a minimal one when `card` is None) and its on-device artifact when that passes the fidelity
    gate on the fixture photos and `photos` (training.on_device); returns the version
    directory."""
    if not source.exists():
        raise PublishError(f"input {source} does not exist")
    if version is not None and (model_dir / str(version)).exists():
        raise VersionExistsError(f"version {version} already exists at {model_dir / str(version)}"
                                 "; versions are immutable: choose another --version or omit it")
    label_list = read_labels(labels) if labels is not None else None
    photo_files(photos or [])  # a wrong --photos stops us before anything is published
    card = check_card(card) if card is not None else minimal_card(source)
    read_cards(model_dir)  # an unreadable model.json stops us before anything is published

    if source.is_dir():
        classes = _check_saved_model(source)

        def write_saved_model(path: Path) -> None:
            shutil.copytree(source, path)
    elif source.suffix.lower() in KERAS_SUFFIXES:
        import numpy as np

        from training.export import check_served_like_keras, export_saved_model

        model = load_keras(source)
        classes = _output_classes(model)
        input_key, output_key = signature_keys(model)
        shape = [2 if d is None else int(d) for d in model.inputs[0].shape]
        sample = np.random.default_rng(0).random(shape, dtype=np.float32)

        def write_saved_model(path: Path) -> None:
            export_saved_model(model, path, input_key, output_key)
            check_served_like_keras(model, path, sample)
    else:
        raise PublishError(f"input {source} is neither a Keras file ({', '.join(KERAS_SUFFIXES)}) "
                           "nor a SavedModel directory")

    if label_list is not None and classes is not None and len(label_list) != classes:
        raise PublishError(f"labels list {len(label_list)} classes but the model outputs {classes}")
    on_device: dict = {}

    def write(path: Path) -> None:
        write_saved_model(path)
        on_device["entry"] = publish_on_device(path, photos or [], quantization, log)

    version_dir = publish_version(model_dir, write, version)
    if label_list is not None:
        write_labels(model_dir, label_list)
    if on_device.get("entry"):
        card = {**card, "on_device": on_device["entry"]}
    write_card(model_dir, int(version_dir.name), card)
    return version_dir


def read_card_file(path: Path) -> dict:
    """A --card file: a JSON object whose fields replace those of the minimal card."""
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"cannot read model card {path}: {exc}") from exc
    if not isinstance(fields, dict):
        raise PublishError(f"model card {path} must be a JSON object")
    return fields


def add_on_device_arguments(parser: argparse.ArgumentParser) -> None:
    """--photos and --quantization of every command that publishes a version."""
    parser.add_argument("--photos", type=Path, action="append", default=[],
                        help="the on-device artifact must also answer like the SavedModel on "
                             "the photos in this directory (repeatable; docs/mobile.md)")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=DEFAULT_QUANTIZATION,
                        help=f"on-device weights (default: {DEFAULT_QUANTIZATION})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="convert-model",
        description="Convert a Keras .h5/.keras model (or copy a SavedModel directory) into the "
                    "next version of a TF Serving model repository, atomically.")
    parser.add_argument("source", type=Path, help=".h5, .hdf5 or .keras file, or SavedModel dir")
    parser.add_argument("repository", type=Path,
                        help="model repository (e.g. model.service/models)")
    parser.add_argument("--name", default="cassava", help="model name (default: cassava)")
    parser.add_argument("--labels", type=Path, help="labels.json to copy beside the versions")
    parser.add_argument("--card", type=Path,
                        help="model card fields (JSON object) over the minimal card "
                             "written to REPOSITORY/NAME/model.json (see docs/model-card.md)")
    parser.add_argument("--version", type=int, help="version number (default: the next one); "
                        "an existing version is never overwritten")
    add_on_device_arguments(parser)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, '_', '-', '.'")
    try:
        card = None
        if args.card is not None:
            card = {**minimal_card(args.source), **read_card_file(args.card)}
        version_dir = convert(args.source, args.repository / args.name, args.labels, args.version,
                              card, args.photos, args.quantization)
    except PublishError as exc:
        print(f"convert-model: error: {exc}", file=sys.stderr)
        return 1
    print(f"convert-model: wrote {version_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
