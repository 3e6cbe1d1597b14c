"""python -m leafsynth (scripts/generate-leaves): write synthetic leaf images to
<out>/<class>/<class>-<seed>.<ext>."""

import argparse
import sys
from pathlib import Path

import leafsynth


def main() -> int:
    parser = argparse.ArgumentParser(prog="generate-leaves", description=__doc__.split(":")[0])
    parser.add_argument("out", type=Path, help="output directory (created)")
    parser.add_argument("--count", type=int, default=10, help="images per class (default 10)")
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT (default 512x512)")
    parser.add_argument("--format", default="JPEG", choices=["JPEG", "PNG"], type=str.upper)
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--classes", nargs="+", default=list(leafsynth.CLASSES),
                        choices=leafsynth.CLASSES, metavar="CLASS")
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    ext = "jpg" if args.format == "JPEG" else "png"
    for label in args.classes:
        folder = args.out / label
        folder.mkdir(parents=True, exist_ok=True)
        for seed in range(args.seed, args.seed + args.count):
            image = leafsynth.render(label, seed, (width, height))
            (folder / f"{label}-{seed}.{ext}").write_bytes(leafsynth.encode(image, args.format))
    print(f"wrote {args.count * len(args.classes)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
