"""Coverage-guided fuzzing of the image normalisation (atheris), seeded with the bad-input corpus,
for a bounded time; crashes are kept as regression cases (fuzz_regressions/)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.api_service.fuzz_target import check
from tests.api_service.test_bad_input import CASES, FIELD
from tests.support.paths import REPO_ROOT, VENV_PYTHON, leaf_photos

HARNESS = Path(__file__).with_name("fuzz_imaging.py")
REGRESSIONS = Path(__file__).with_name("fuzz_regressions")
FUZZ_SECONDS = 60


def seed_corpus(directory: Path) -> int:
    """The bad-input corpus's uploads (test_bad_input.CASES) and small real photos."""
    count = 0
    for case in CASES:
        files = case.request().get("files")
        if isinstance(files, dict) and FIELD in files:
            data = files[FIELD][1]
            if len(data) <= 1_000_000:  # libFuzzer's default -max_len is far smaller anyway
                (directory / f"case-{case.name}").write_bytes(data)
                count += 1
    for index, path in enumerate(leaf_photos()):
        photo = Image.open(path).convert("RGB").resize((96, 72))
        for fmt in ("JPEG", "PNG"):
            buffer = io.BytesIO()
            photo.save(buffer, fmt)
            (directory / f"photo-{index}.{fmt.lower()}").write_bytes(buffer.getvalue())
            count += 1
    return count


def regression_inputs() -> list[Path]:
    return sorted(p for p in REGRESSIONS.iterdir() if p.name != "README.md")


def test_the_seed_corpus_and_fuzz_regressions_are_rejected_or_decoded(tmp_path: Path) -> None:
    """Every seed and every kept crash goes through the fuzz target's check (no crash yet:
    fuzz_regressions/ holds none, so the seeds keep this test meaningful)."""
    assert seed_corpus(tmp_path) > 20
    for path in [*sorted(tmp_path.iterdir()), *regression_inputs()]:
        check(path.read_bytes())


@pytest.mark.slow
def test_bounded_fuzzing_finds_no_crash(tmp_path: Path, artifacts_dir: Path) -> None:
    corpus = tmp_path / "corpus"
    crashes = tmp_path / "crashes"
    corpus.mkdir()
    crashes.mkdir()
    assert seed_corpus(corpus) > 20
    result = subprocess.run(
        [str(VENV_PYTHON), str(HARNESS), f"-max_total_time={FUZZ_SECONDS}",
         "-rss_limit_mb=2048", "-max_len=65536", "-timeout=20", f"-artifact_prefix={crashes}/",
         "-print_final_stats=1", str(corpus)],
        capture_output=True, text=True, timeout=FUZZ_SECONDS + 120, cwd=REPO_ROOT, check=False)
    log = result.stdout + result.stderr
    (artifacts_dir / "imaging-fuzz.log").write_text(log)
    found = sorted(crashes.iterdir())
    if found:
        kept = artifacts_dir / "imaging-fuzz-crashes"
        kept.mkdir(exist_ok=True)
        for crash in found:
            shutil.copy(crash, kept / crash.name)
    assert result.returncode == 0 and not found, (
        f"atheris found {len(found)} crashing input(s), copied to {artifacts_dir}/imaging-fuzz-"
        f"crashes/: add them to {REGRESSIONS.relative_to(REPO_ROOT)}/ with the fix.\n"
        + log[-4000:])
    assert "stat::number_of_executed_units" in log
