"""scripts/train-demo-model: train the demo CNN on synthetic leaves (leafsynth) and publish it as
the next version of <repository>/<name> (atomically, through the same writer as convert-model).

This is a demo trained on synthetic images, NOT a diagnostic model: see docs/demo-model.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from training import dataset
from training.card import demo_card, write_card
from training.labels import LABELS
from training.on_device import photo_files
from training.on_device import publish as publish_on_device
from training.repository import PublishError, publish_version, write_labels

DEFAULT_REPOSITORY = Path(__file__).resolve().parents[1] / "models"
INPUT_KEY, OUTPUT_KEY = "image", "probabilities"


def _pipeline(images: np.ndarray, labels: np.ndarray, batch: int, seed: int, train: bool):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if train:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)

    def prepare(x, y):
        x = tf.cast(x, tf.float32) / 255.0
        if train:  # leaves have no up or left: flips and quarter turns are free extra data
            x = tf.image.random_flip_left_right(x)
            x = tf.image.rot90(x, tf.random.uniform([], 0, 4, tf.int32))
        return x, y

    return ds.map(prepare, num_parallel_calls=2).batch(batch).prefetch(2)


def confusion(truth: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def train(per_class: int, val_per_class: int, epochs: int, batch: int, seed: int,
          processes: int, log=print):
    """Generate the data, train, and return (model, report dict, validation images)."""
    started = time.monotonic()
    x_train, y_train = dataset.build(dataset.items(per_class, dataset.TRAIN_SEED), processes)
    x_val, y_val = dataset.build(dataset.items(val_per_class, dataset.VAL_SEED), processes)
    generated = time.monotonic() - started
    log(f"generated {len(x_train)} training + {len(x_val)} validation images in {generated:.0f}s")

    import keras

    from training.model import build

    keras.utils.set_random_seed(seed)
    model = build(num_classes=len(LABELS))
    steps = epochs * -(-len(x_train) // batch)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
            3e-3, decay_steps=steps, warmup_target=None, alpha=0.02)),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit_started = time.monotonic()
    history = model.fit(_pipeline(x_train, y_train, batch, seed, True), epochs=epochs,
                        validation_data=_pipeline(x_val, y_val, batch, seed, False),
                        shuffle=False, verbose=2)
    trained = time.monotonic() - fit_started
    probabilities = model.predict(x_val.astype(np.float32) / 255.0, batch_size=batch, verbose=0)
    predicted = probabilities.argmax(axis=1)
    report = {
        "train_images": len(x_train), "validation_images": len(x_val), "epochs": epochs,
        "seed": seed, "generate_seconds": round(generated, 1), "fit_seconds": round(trained, 1),
        "validation_accuracy": round(float((predicted == y_val).mean()), 4),
        "final_train_accuracy": round(float(history.history["accuracy"][-1]), 4),
        "confusion": confusion(y_val, predicted, len(LABELS)).tolist(),
        "parameters": int(model.count_params()),
    }
    return model, report, x_val


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train-demo-model", description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=DEFAULT_REPOSITORY)
    parser.add_argument("--name", default="cassava")
    parser.add_argument("--version", type=int, help="default: the next version number")
    parser.add_argument("--per-class", type=int, default=800, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="image-rendering processes")
    parser.add_argument("--report", type=Path, help="also write the training report (JSON) here")
    from training.convert import add_on_device_arguments

    add_on_device_arguments(parser)
    args = parser.parse_args(argv)
    model_dir = args.repository / args.name
    if args.version is not None and (model_dir / str(args.version)).exists():
        print(f"train-demo-model: error: version {args.version} already exists at "
              f"{model_dir / str(args.version)}", file=sys.stderr)
        return 1
    try:
        photo_files(args.photos)
    except PublishError as exc:
        print(f"train-demo-model: error: {exc}", file=sys.stderr)
        return 1

    model, report, x_val = train(args.per_class, args.val_per_class, args.epochs,
                                 args.batch_size, args.seed, args.processes)
    from training.export import check_served_like_keras, export_saved_model

    sample = x_val[:8].astype(np.float32) / 255.0

    def write(path: Path) -> None:
        export_saved_model(model, path, INPUT_KEY, OUTPUT_KEY)
        report["export_max_abs_diff"] = check_served_like_keras(model, path, sample)
        report["on_device"] = publish_on_device(path, args.photos, args.quantization,
                                                log=lambda line: print(line, file=sys.stderr))

    try:
        version_dir = publish_version(model_dir, write, args.version)
    except PublishError as exc:
        print(f"train-demo-model: error: {exc}", file=sys.stderr)
        return 1
    write_labels(model_dir, LABELS)
    card = demo_card(report)
    if report["on_device"]:
        card["on_device"] = report["on_device"]
    write_card(model_dir, int(version_dir.name), card)
    report["version_dir"] = str(version_dir)
    report["size_bytes"] = sum(p.stat().st_size for p in version_dir.rglob("*") if p.is_file())
    text = json.dumps(report, indent=2)
    print(text)
    if args.report:
        args.report.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
