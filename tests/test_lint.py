"""Lint and types are part of the suite (the fast lane and CI): ruff on the whole tree, mypy as
pyproject.toml configures it (strict on the API and the survey client). mypy keeps its cache in
.mypy_cache (git-ignored): a warm run takes about a second."""

from __future__ import annotations

import subprocess

from tests.support.paths import REPO_ROOT, VENV_PYTHON


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_PYTHON), "-m", *command], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_mypy_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
