"""What a test does when the machine lacks something it needs (an engine, podman, root)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def skip_or_fail(problem: str) -> NoReturn:
    """Skip with the reason; with CI=true fail instead, so a CI machine that lost a tool cannot
    pass by skipping."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {problem}", pytrace=False)
    pytest.skip(problem)
