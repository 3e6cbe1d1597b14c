"""Languages: chosen from the browser's preferences, switchable on the page, remembered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.ui_service.browsing import PREDICT_PATH, choose_photo, open_page, strings

pytestmark = [pytest.mark.browser, pytest.mark.stack]

VISIBLE_KEYS = ("app.title", "app.tagline", "lang.label", "photo.heading", "photo.tips",
                "photo.take", "photo.choose", "footer.privacy")


def visible_texts(page: Page) -> dict[str, str]:
    """The text of every element the page fills from the language file, by key."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-i18n]')]
        .map((element) => [element.dataset.i18n, element.textContent]))""")


def expected_texts(language: str) -> dict[str, str]:
    return {key: strings(language)[key] for key in VISIBLE_KEYS}


@pytest.mark.parametrize(("context_options", "language"), [
    ({"locale": "en-US"}, "en"),
    ({"locale": "fr-CI"}, "fr"),
    ({"locale": "sw-TZ"}, "sw"),
    ({"locale": "pt-MZ"}, "pt"),
    ({"locale": "de-DE"}, "en"),  # not offered: English
], ids=["en-US", "fr-CI", "sw-TZ", "pt-MZ", "de-DE"])
def test_the_language_follows_the_browser(page: Page, ui: str, context_options: dict[str, Any],
                                          language: str) -> None:
    open_page(page, ui)
    assert page.evaluate("document.documentElement.lang") == language
    texts = visible_texts(page)
    assert {key: texts[key] for key in VISIBLE_KEYS} == expected_texts(language)
    assert page.title() == strings(language)["app.title"]
    assert page.input_value("#lang") == language


def test_switching_language_changes_the_texts_and_is_remembered(page: Page, ui: str) -> None:
    open_page(page, ui)
    before = visible_texts(page)
    for language in ("fr", "sw", "pt", "en"):
        page.get_by_label(strings(page.evaluate("document.documentElement.lang"))["lang.label"]) \
            .select_option(language)
        page.wait_for_function("(code) => document.documentElement.lang === code", arg=language)
        texts = visible_texts(page)
        assert {key: texts[key] for key in VISIBLE_KEYS} == expected_texts(language)
        # No element shows a raw key: every string the page uses exists in this language.
        assert [key for key, text in texts.items() if text == key or not text.strip()] == []
    assert visible_texts(page) == before

    page.select_option("#lang", "sw")
    page.wait_for_function("() => document.documentElement.lang === 'sw'")
    page.reload()
    page.wait_for_selector("body.ready")
    assert page.evaluate("document.documentElement.lang") == "sw"
    assert page.inner_text("h1") == strings("sw")["app.title"]


def test_the_answer_is_retold_in_the_new_language(page: Page, ui: str,
                                                  leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        choose_photo(page, leaf_photo_paths[0])
    code = answer.value.json()["code"]
    page.wait_for_selector("#result:not([hidden])")
    for language in ("pt", "fr", "sw"):
        page.select_option("#lang", language)
        page.wait_for_function("(code) => document.documentElement.lang === code", arg=language)
        words = strings(language)
        assert page.inner_text("#result-name") == words[f"class.{code}"]
        assert page.locator("#advice-steps li").all_inner_texts() == words["advice"][code]["steps"]
        assert page.inner_text("#result-heading") == words["result.heading"]
