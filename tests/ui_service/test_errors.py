"""Every failure reads as a plain sentence in an aria-live region, with a way to try again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.support.local_stack import LocalStack
from tests.ui_service.browsing import (
    LANGUAGES,
    PREDICT_PATH,
    Traffic,
    choose_photo,
    open_page,
    strings,
    ui_url,
    wait_for_error,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.slow]

EN = strings("en")


def error_region_is_live(page: Page) -> bool:
    return page.eval_on_selector("#error", """e => e.getAttribute('role') === 'alert'
        && e.getAttribute('aria-live') === 'assertive' && e.contains(
            document.getElementById('error-text'))""")


def test_the_api_down_gives_a_readable_error_and_a_retry(
        page: Page, local_stack_factory: Callable[..., LocalStack],
        leaf_photo_paths: list[Path]) -> None:
    stack = local_stack_factory(keep_going=True)  # private: this test kills its API
    open_page(page, ui_url(stack))
    stack.stop_service("api")

    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        choose_photo(page, leaf_photo_paths[0])
    assert answer.value.status in (502, 503, 504)
    assert wait_for_error(page) == EN["error.down"]
    assert error_region_is_live(page)
    assert page.get_by_role("button", name=EN["action.retry"]).is_visible()
    assert not page.is_visible("#result")


@pytest.mark.parametrize(("body", "status", "key"), [
    # What the API really answers for such bodies, sent by the page's own upload code.
    ("new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8])],"
     " {type: 'image/jpeg'})", 400, "error.bad_photo"),
    ("new Blob(['GIF89a' + 'x'.repeat(64)], {type: 'image/gif'})", 415, "error.not_a_photo"),
    ("new Blob([new Uint8Array(11 * 1024 * 1024)], {type: 'image/jpeg'})", 413,
     "error.too_large"),
], ids=["400-undecodable", "415-gif", "413-too-large"])
def test_api_refusals_read_as_plain_sentences(page: Page, ui: str, body: str, status: int,
                                               key: str) -> None:
    open_page(page, ui)
    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        page.evaluate(f"import('./app.js').then((app) => app.diagnose({body}))")
    assert answer.value.status == status
    assert wait_for_error(page) == EN[key]
    assert error_region_is_live(page)
    # A photo the service cannot read: offer another photo, not a pointless resend.
    assert page.get_by_role("button", name=EN["action.another"]).is_visible()
    assert not page.is_visible("#retry")


@pytest.mark.parametrize(("size", "mime", "code"), [
    (1, "image/png", "image_too_small"),  # a 1x1 PNG was answered "Healthy" (issue 14)
    (640, "image/jpeg", "blank_image"),  # an untouched canvas: an all-black photo
])
def test_a_photo_that_cannot_show_a_leaf_says_so(page: Page, ui: str, size: int, mime: str,
                                                 code: str) -> None:
    open_page(page, ui)
    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        page.evaluate("""async ([size, mime]) => {
            const app = await import('./app.js');
            const canvas = document.createElement('canvas');
            canvas.width = size;
            canvas.height = Math.max(1, Math.round(size * 3 / 4));
            const blob = await new Promise((resolve) => canvas.toBlob(resolve, mime));
            app.diagnose(blob);
        }""", [size, mime])
    assert answer.value.status == 422 and answer.value.json()["code"] == code
    assert wait_for_error(page) == EN["error.no_leaf"]
    assert page.get_by_role("button", name=EN["action.another"]).is_visible()
    assert not page.is_visible("#result")


def test_an_incomplete_request_reads_as_a_plain_sentence(page: Page, ui: str) -> None:
    open_page(page, ui)
    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    assert answer.value.status == 422
    assert wait_for_error(page) == EN["error.request"]


def test_a_file_that_is_not_a_photo_is_refused_before_upload(page: Page, ui: str,
                                                            traffic: Traffic) -> None:
    open_page(page, ui)
    choose_photo(page, {"name": "leaf.jpg", "mimeType": "image/jpeg",
                        "buffer": b"these bytes are no photo at all"})
    assert wait_for_error(page) == EN["error.not_a_photo"]
    assert traffic.uploads() == []
    assert page.get_by_role("button", name=EN["action.another"]).is_visible()


def test_offline_says_so_and_retry_works_when_back(page: Page, context: BrowserContext, ui: str,
                                                   leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    assert not page.is_visible("#offline")
    context.set_offline(True)
    page.wait_for_selector("#offline:not([hidden])")
    assert page.inner_text("#offline") == EN["offline.banner"]

    choose_photo(page, leaf_photo_paths[0])
    assert wait_for_error(page) == EN["error.offline"]
    assert error_region_is_live(page)

    context.set_offline(False)
    page.wait_for_selector("#offline", state="hidden")
    page.get_by_role("button", name=EN["action.retry"]).click()
    assert wait_for_result(page)["name"]
    assert page.inner_text("#error-text") == ""


@pytest.mark.parametrize("language", LANGUAGES)
def test_error_sentences_follow_the_language(page: Page, ui: str, language: str) -> None:
    open_page(page, ui)
    page.select_option("#lang", language)
    page.wait_for_function("(code) => document.documentElement.lang === code", arg=language)
    page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    assert wait_for_error(page) == strings(language)["error.request"]


def test_the_error_mapping_covers_every_status_and_code(page: Page, ui: str) -> None:
    """describeError() for each documented problem code and HTTP status (contract 4)."""
    open_page(page, ui)
    cases = {
        "network": ({"kind": "network"}, "error.unreachable", True),
        "offline": ({"kind": "network", "offline": True}, "error.offline", True),
        "timeout": ({"kind": "timeout"}, "error.timeout", True),
        "not decodable here": ({"kind": "decode"}, "error.not_a_photo", False),
        "empty_image": ({"status": 400, "code": "empty_image"}, "error.bad_photo", False),
        "undecodable_image": ({"status": 400, "code": "undecodable_image"}, "error.bad_photo",
                              False),
        "truncated_image": ({"status": 400, "code": "truncated_image"}, "error.bad_photo", False),
        "body_too_large": ({"status": 413, "code": "body_too_large"}, "error.too_large", False),
        "image_too_large": ({"status": 413, "code": "image_too_large"}, "error.too_large", False),
        "image_too_costly": ({"status": 413, "code": "image_too_costly"}, "error.too_large",
                             False),
        "image_too_small": ({"status": 422, "code": "image_too_small"}, "error.no_leaf", False),
        "blank_image": ({"status": 422, "code": "blank_image"}, "error.no_leaf", False),
        "decoder_busy": ({"status": 503, "code": "decoder_busy"}, "error.busy", True),
        "unsupported": ({"status": 415, "code": "unsupported_media_type"}, "error.not_a_photo",
                        False),
        "missing_field": ({"status": 422, "code": "missing_field"}, "error.request", True),
        "model_unavailable": ({"status": 503, "code": "model_unavailable"}, "error.down", True),
        "model_timeout": ({"status": 504, "code": "model_timeout"}, "error.timeout", True),
        "model_error": ({"status": 502, "code": "model_error"}, "error.down", True),
        "bare 502 (proxy)": ({"status": 502}, "error.down", True),
        "bare 503 (proxy)": ({"status": 503}, "error.down", True),
        "bare 504 (proxy)": ({"status": 504}, "error.timeout", True),
        "bare 413 (proxy)": ({"status": 413}, "error.too_large", False),
        "429": ({"status": 429}, "error.busy", True),
        "500": ({"status": 500, "code": "internal_error"}, "error.unexpected", True),
    }
    described = page.evaluate("""async (cases) => {
        const app = await import('./app.js');
        return Object.fromEntries(Object.entries(cases).map(
            ([name, [input]]) => [name, app.describeError(input)]));
    }""", cases)
    for name, (_input, key, resend) in cases.items():
        assert described[name] == {"key": key, "resend": resend}, name
