"""The page as Lighthouse 12 sees it on a phone (mobile preset, simulated throttling): fast, no
layout shift, accessible, best practices, findable. Lighthouse (npm, pinned in
ui.service/package-lock.json) drives Debian's Chromium itself; its report is written to
test-artifacts/ui-lighthouse.json, and docs/ui.md records the figures before and after."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT
from tests.ui_service.browsing import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.stack]

LIGHTHOUSE = REPO_ROOT / "ui.service" / "node_modules" / ".bin" / "lighthouse"
# Lighthouse's own scores (0..1). Performance is a simulation from one trace (Lantern), stable
# to about +-0.01 here even on a loaded 2-core machine (docs/ui.md: 1.00 in every run).
MIN_SCORES = {"performance": 0.95, "accessibility": 1.0, "best-practices": 1.0, "seo": 1.0}
MAX_CLS = 0.1  # Web Vitals' "good" line


def test_lighthouse_mobile_scores(ui: str, artifacts_dir: Path) -> None:
    assert LIGHTHOUSE.exists(), "npm ci in ui.service (scripts/bootstrap does it)"
    report = artifacts_dir / "ui-lighthouse.json"
    flags = " ".join(["--headless=new", *CHROMIUM_ARGS])
    subprocess.run(
        [LIGHTHOUSE, ui, "--quiet", "--output=json", f"--output-path={report}",
         "--form-factor=mobile", f"--chrome-flags={flags}",
         f"--only-categories={','.join(MIN_SCORES)}"],
        check=True, timeout=180, env={**os.environ, "CHROME_PATH": CHROMIUM})
    result = json.loads(report.read_text())
    assert result["configSettings"]["formFactor"] == "mobile"
    assert result["configSettings"]["throttlingMethod"] == "simulate"
    scores = {name: result["categories"][name]["score"] for name in MIN_SCORES}
    cls = result["audits"]["cumulative-layout-shift"]["numericValue"]
    failed = {name: score for name, score in scores.items() if score < MIN_SCORES[name]}
    audits = {key: audit["title"] for key, audit in result["audits"].items()
              if audit.get("score") is not None and audit["score"] < 1
              and audit.get("scoreDisplayMode") in ("binary", "numeric")}
    assert not failed, f"{failed}; audits below 1: {audits}"
    assert cls <= MAX_CLS, f"cumulative layout shift {cls:.3f}"
