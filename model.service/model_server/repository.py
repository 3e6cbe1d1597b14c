"""What a model's base path holds: version directories named by numbers, TF Serving's layout.

Only all-digit directory names are versions (labels.json and anything else beside them is ignored).
A version directory without saved_model.pb is still being written and is left alone until complete;
writers should build a version elsewhere and rename it into place (scripts/convert-model does).
"""

from __future__ import annotations

import os
from pathlib import Path

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def is_complete(version_dir: Path) -> bool:
    return any((version_dir / name).is_file() for name in SAVED_MODEL_FILES)


def scan_versions(base_path: Path) -> dict[int, Path] | None:
    """Complete version directories under base_path by number; None if base_path is absent."""
    try:
        entries = list(os.scandir(base_path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    versions: dict[int, Path] = {}
    for entry in entries:
        if entry.name.isascii() and entry.name.isdigit() and entry.is_dir():
            path = Path(entry.path)
            if is_complete(path):
                versions[int(entry.name)] = path
    return versions
