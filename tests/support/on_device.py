"""A model repository with the article's model made on-device by the real command
(scripts/make-on-device-model), shared by the stack and browser tests of #22."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.paths import SCRIPTS_DIR, SEED_LABELS, SEED_MODEL_BASE_PATH


def article_repository(root: Path, name: str = "cassava") -> Path:
    """root/<name>/1 = the article's SavedModel, its labels, its TFLite artifact and card."""
    shutil.copytree(SEED_MODEL_BASE_PATH / "1", root / name / "1")
    shutil.copy(SEED_LABELS, root / name / "labels.json")
    made = subprocess.run([SCRIPTS_DIR / "make-on-device-model", root, "--name", name],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    return root
