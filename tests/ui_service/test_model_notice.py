"""The page's demo notice follows the served model's card, on the real no-Docker stack: shown
(translated) while the bundled demo answers, gone once scripts/get-model installs the article's
model (demo: false) into the running stack, back when that version is removed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.support.local_stack import LocalStack, start_local_stack
from tests.support.paths import DEMO_MODEL_NAME, MODEL_REPOSITORY, SCRIPTS_DIR, SEED_MODEL_H5
from tests.support.waiting import wait_until
from tests.ui_service.browsing import (
    LANGUAGES,
    UI_HOST,
    choose_photo,
    open_page,
    strings,
    ui_url,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the bundled repository (the demo, its labels and its card), ours to change."""
    repo = tmp_path_factory.mktemp("models")
    shutil.copytree(MODEL_REPOSITORY / DEMO_MODEL_NAME, repo / DEMO_MODEL_NAME)
    return repo


@pytest.fixture(scope="module")
def notice_stack(repository: Path, logs_dir: Path) -> Iterator[LocalStack]:
    running = start_local_stack(logs_dir, model_base_path=repository,
                                model_name=DEMO_MODEL_NAME)
    yield running
    running.stop()


def served(stack: LocalStack) -> dict[str, Any]:
    reply = stack.get(UI_HOST, "/api/v1/model")
    assert reply.status_code == 200, reply.text
    return reply.json()


def served_version(stack: LocalStack) -> int | None:
    """The version /v1/model reports; None when it does not answer 200 (waiting tolerates a
    transient refusal during a switch instead of failing on it)."""
    reply = stack.get(UI_HOST, "/api/v1/model")
    return reply.json()["version"] if reply.status_code == 200 else None


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    wait_until(condition, timeout, what, every=0.25)


def diagnose(page: Page, photo: Path) -> int:
    """Upload a photo from the page; the model version that answered."""
    with page.expect_response(lambda r: r.url.endswith("/api/predict/image")) as answer:
        choose_photo(page, photo)
    assert answer.value.status == 200, answer.value.text()
    wait_for_result(page)
    return answer.value.json()["model"]["version"]


def test_the_demo_notice_follows_the_served_models_card(
        page: Page, notice_stack: LocalStack, repository: Path,
        leaf_photo_paths: list[Path]) -> None:
    notice = page.locator("#demo-notice")
    open_page(page, ui_url(notice_stack))
    expect(notice).to_be_visible()
    for language in LANGUAGES:
        page.select_option("#lang", language)
        expect(notice).to_have_text(strings(language)["model.demo_notice"])
    page.select_option("#lang", "en")
    assert diagnose(page, leaf_photo_paths[0]) == 1
    expect(notice).to_be_visible()  # an answer never hides it
    assert (served(notice_stack)["version"], served(notice_stack)["demo"]) == (1, True)

    # The article's model into the running stack's repository (MODEL_BASE_PATH, as run-local).
    result = subprocess.run(
        [SCRIPTS_DIR / "get-model", "article", "--file", SEED_MODEL_H5], capture_output=True,
        text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
             "MODEL_BASE_PATH": str(repository), "MODEL_NAME": DEMO_MODEL_NAME})
    assert result.returncode == 0, result.stderr[-3000:]
    wait_for(lambda: served_version(notice_stack) == 2, "version 2 served")
    card = served(notice_stack)["card"]
    assert (card["demo"], card["licence"], card["attribution"]) == (
        False, "MIT", "Copyright (c) 2021 Patrick Kalkman")

    # The open page learns of the switch from its next answer, without a reload.
    assert diagnose(page, leaf_photo_paths[1]) == 2
    expect(notice).to_be_hidden(timeout=20_000)  # after the page's own GET /api/v1/model
    with page.expect_response(lambda r: r.url.endswith("/api/v1/model")) as described:
        page.reload()
    assert described.value.json()["demo"] is False
    page.wait_for_selector("body.ready")
    expect(notice).to_be_hidden()

    # Back to the demo (docs/model-card.md): remove version 2; the notice comes back.
    shutil.rmtree(repository / DEMO_MODEL_NAME / "2")
    wait_for(lambda: served_version(notice_stack) == 1, "version 1 served again")
    assert diagnose(page, leaf_photo_paths[2]) == 1
    expect(notice).to_be_visible(timeout=20_000)
    expect(notice).to_have_text(strings("en")["model.demo_notice"])
