"""schemathesis against the API's own OpenAPI document: every check (no server error, statuses,
content types, headers and bodies as documented, valid data accepted, invalid data refused).

Positive data gets real photos for the JPEG/PNG part (tests/api_service/schemathesis_hooks.py);
the schema itself declares the limits the API enforces (one file, JPEG/PNG, at most 8 parts)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.api_service.conftest import ApiServer
from tests.support.paths import REPO_ROOT

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 100  # per operation and phase; about a minute here


def test_schemathesis_finds_no_issue(seed_api: ApiServer, tmp_path: Path) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api_service.schemathesis_hooks",
           "PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1"}
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "st"), "run", f"{seed_api.base_url}/openapi.json",
         "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
         "--phases", "examples,coverage,fuzzing,stateful", "--request-timeout", "30",
         # schemathesis 4.32.5 sends an array of binary parts (the batch endpoint's `images`)
         # without filenames, i.e. as text fields, which the API rightly does not take for
         # photos: its positive-data check cannot pass there (docs/reliability.md).
         "--exclude-path", "/v1/predict/images"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
        cwd=tmp_path)  # its cache directory stays out of the checkout
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    # Every documented operation but the excluded batch endpoint was tested.
    paths = httpx.get(f"{seed_api.base_url}/openapi.json", timeout=10).json()["paths"]
    total = sum(1 for item in paths.values() for method in item
                if method in {"get", "put", "post", "delete", "patch", "head", "options"})
    assert f"{total - 1} selected / {total} total" in result.stdout
