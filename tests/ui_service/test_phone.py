"""The page on a phone: Pixel 5 emulation (393x851 CSS px, touch), screenshots kept as artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright

from tests.ui_service.browsing import open_page, strings, wait_for_error, wait_for_result

pytestmark = [pytest.mark.browser, pytest.mark.stack]

PIXEL_5_WIDTH = 393


@pytest.fixture
def context_options(playwright: Playwright) -> dict[str, Any]:
    options = dict(playwright.devices["Pixel 5"])
    options.pop("default_browser_type", None)
    return options


def test_pixel_5_screenshots(page: Page, ui: str, artifacts_dir: Path,
                             leaf_photo_paths: list[Path]) -> None:
    """test-artifacts/ui-pixel5-{start,result,error}.png, for a human to look at."""
    shots = {name: artifacts_dir / f"ui-pixel5-{name}.png" for name in ("start", "result", "error")}
    open_page(page, ui)
    assert page.evaluate("matchMedia('(pointer: coarse)').matches")
    assert not page.is_visible(".drop")  # no drag-and-drop hint on a touch screen
    page.screenshot(path=shots["start"])

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name=strings("en")["photo.take"]).tap()
    chooser.value.set_files(leaf_photo_paths[0])
    wait_for_result(page)
    # The viewport as the phone shows it: the answer has the focus, so it is scrolled into view.
    # (No full_page here: Chromium's full-page capture drops the touch emulation.)
    page.screenshot(path=shots["result"])

    page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    wait_for_error(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=shots["error"])

    assert page.evaluate("document.documentElement.scrollWidth") <= PIXEL_5_WIDTH
    for shot in shots.values():
        assert shot.stat().st_size > 10_000
