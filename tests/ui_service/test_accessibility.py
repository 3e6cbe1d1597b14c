"""Keyboard alone, labelled controls, visible focus, contrast, small screens, a phone screenshot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.ui_service.browsing import (
    LANGUAGES,
    choose_photo,
    open_page,
    strings,
    wait_for_error,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack]

EN = strings("en")
AA_NORMAL_TEXT = 4.5  # WCAG 2 AA contrast ratio for body-size text


def tab_to(page: Page, element_id: str, limit: int = 15) -> None:
    """Press Tab until the element has focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} not reached with {limit} Tab presses")


def focus_ring(page: Page) -> dict[str, str]:
    return page.evaluate("""() => {
        const style = getComputedStyle(document.activeElement);
        return {style: style.outlineStyle, width: style.outlineWidth, color: style.outlineColor};
    }""")


@pytest.mark.parametrize(("button", "key"), [("choose", "Enter"), ("take", "Space")])
def test_an_upload_can_be_done_with_the_keyboard_alone(page: Page, ui: str, button: str, key: str,
                                                       leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    # A key press, unlike page.click(), does not wait: turn the file-chooser interception on
    # (a listener does) and let a round trip settle it, or a busy machine opens a real dialog.
    page.on("filechooser", lambda _chooser: None)
    page.evaluate("0")
    tab_to(page, button)
    ring = focus_ring(page)
    assert ring["style"] != "none" and float(ring["width"].removesuffix("px")) >= 2

    with page.expect_file_chooser() as chooser:
        page.keyboard.press(key)
    chooser.value.set_files(leaf_photo_paths[0])
    assert wait_for_result(page)["name"]
    # The answer takes the focus, so a screen reader reads it and the phone scrolls to it.
    assert page.evaluate("document.activeElement.id") == "result-heading"

    tab_to(page, "again")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "take"


def test_the_language_can_be_changed_with_the_keyboard(page: Page, ui: str) -> None:
    open_page(page, ui)
    tab_to(page, "lang")
    assert focus_ring(page)["style"] != "none"
    page.keyboard.press("ArrowDown")  # English -> Français
    page.wait_for_function("() => document.documentElement.lang === 'fr'")
    assert page.inner_text("h1") == strings("fr")["app.title"]


def test_every_control_has_a_name(page: Page, ui: str, leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    assert page.get_by_role("combobox", name=EN["lang.label"]).is_visible()
    for key in ("photo.take", "photo.choose"):
        assert page.get_by_role("button", name=EN[key], exact=True).is_visible()
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    assert page.get_by_role("img", name=EN["photo.preview_alt"]).is_visible()
    assert page.get_by_role("heading", name=EN["result.heading"]).is_visible()
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, select, input')]
        .filter((e) => e.offsetParent !== null)
        .filter((e) => !(e.textContent.trim() || e.labels?.length || e.getAttribute('aria-label')))
        .map((e) => e.outerHTML)""")
    assert unnamed == []


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: tuple[float, float, float], bg: tuple[float, float, float]) -> float:
    hi, lo = sorted((relative_luminance(fg), relative_luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def parse_rgb(css: str) -> tuple[float, float, float]:
    r, g, b = (float(v) for v in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


TEXT_COLOURS = """() => [...document.querySelectorAll('h1, h2, h3, h4, p, li, span, button,select')]
    .filter((e) => e.offsetParent !== null && e.textContent.trim())
    .map((e) => {
        let back = e;
        while (back && ['rgba(0, 0, 0, 0)', 'transparent'].includes(
            getComputedStyle(back).backgroundColor)) back = back.parentElement;
        return {what: e.tagName + '#' + e.id + '.' + e.className,
                fg: getComputedStyle(e).color,
                bg: back ? getComputedStyle(back).backgroundColor : 'rgb(255, 255, 255)'};
    })"""


def test_all_text_meets_aa_contrast(page: Page, ui: str, leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    checked = page.evaluate(TEXT_COLOURS)  # the answer, advice and sources
    page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    wait_for_error(page)
    page.context.set_offline(True)
    page.wait_for_selector("#offline:not([hidden])")
    checked += page.evaluate(TEXT_COLOURS)  # the error box and the offline banner
    assert {"P#error-text.", "P#offline.offline", "P#result-name.name"} <= {
        c["what"] for c in checked}
    ratios = {(c["what"], c["fg"], c["bg"]): contrast(parse_rgb(c["fg"]), parse_rgb(c["bg"]))
              for c in checked}
    assert {what: round(ratio, 2) for what, ratio in ratios.items() if ratio < AA_NORMAL_TEXT} \
        == {}


@pytest.mark.parametrize("context_options", [{"viewport": {"width": 320, "height": 640}}])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_page_fits_320_px(page: Page, ui: str, context_options: dict[str, Any],
                              language: str, leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    page.select_option("#lang", language)
    page.wait_for_function("(code) => document.documentElement.lang === code", arg=language)
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    wait_for_error(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    overflowing = page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().right > 320.5)
        .map((e) => e.tagName + '#' + e.id)""")
    assert overflowing == []
