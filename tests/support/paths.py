"""Where things are: the repository, and the read-only shared fixtures beside it."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"

# The article's model, laid out as a TF Serving repository: base path .../saved_model, version 1.
SEED_MODEL_BASE_PATH = SHARED_DIR / "fixtures" / "seed-model" / "saved_model"
SEED_MODEL_NAME = "saved_model"
SEED_MODEL_H5 = SHARED_DIR / "fixtures" / "seed-model" / "best-model.h5"
SEED_LABELS = SEED_MODEL_BASE_PATH / "labels.json"
LEAF_PHOTOS_DIR = SHARED_DIR / "fixtures" / "leaf-photos"

# The project's own model repository and its bundled demo model.
MODEL_REPOSITORY = REPO_ROOT / "model.service" / "models"
DEMO_MODEL_NAME = "cassava"

SCRIPTS_DIR = REPO_ROOT / "scripts"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def leaf_photos() -> list[Path]:
    """The real cassava leaf photos, sorted so test ids are stable."""
    return sorted(LEAF_PHOTOS_DIR.glob("*.jpg"))
