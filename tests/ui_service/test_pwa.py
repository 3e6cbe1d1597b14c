"""Installable shell: manifest, icons, a service worker that opens the page offline, no API."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, Playwright

from tests.support.local_stack import LocalStack
from tests.ui_service.browsing import (
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_HOST,
    choose_photo,
    open_page,
    service_worker_state,
    strings,
    wait_for_error,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack]

EN = strings("en")
CACHE_PREFIX = "cassava-shell-"
CACHED_URLS = """async () => {
    const urls = [];
    for (const name of await caches.keys()) {
        for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
    }
    return urls;
}"""


def test_the_service_worker_registers_and_activates(page: Page, ui: str,
                                                    local_stack: LocalStack) -> None:
    open_page(page, ui)
    assert service_worker_state(page) == "activated"
    registration = page.evaluate("""async () => {
        const r = await navigator.serviceWorker.ready;
        return {scope: r.scope, script: r.active.scriptURL};
    }""")
    assert registration == {"scope": ui, "script": ui + "sw.js"}
    response = local_stack.get(UI_HOST, "/sw.js")
    assert "no-cache" in response.headers["cache-control"]  # contract 6: updates are seen


def test_offline_the_page_opens_and_says_a_diagnosis_needs_a_connection(
        page: Page, context: BrowserContext, ui: str, leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    service_worker_state(page)
    context.set_offline(True)
    page.reload()
    page.wait_for_selector("body.ready")
    assert page.is_visible("#offline")
    assert page.inner_text("#offline") == EN["offline.banner"]
    assert page.inner_text("h1") == EN["app.title"]
    assert page.evaluate("getComputedStyle(document.body).fontFamily")  # the stylesheet came too
    assert page.eval_on_selector(".card", "e => getComputedStyle(e).borderTopStyle") == "solid"

    page.select_option("#lang", "pt")  # every language is in the shell
    page.wait_for_function("() => document.documentElement.lang === 'pt'")
    assert page.inner_text("#offline") == strings("pt")["offline.banner"]

    choose_photo(page, leaf_photo_paths[0])
    assert wait_for_error(page) == strings("pt")["error.offline"]


def test_api_answers_are_never_cached(page: Page, ui: str, leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    service_worker_state(page)
    page.reload()  # now controlled by the worker
    page.wait_for_selector("body.ready")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    page.evaluate("fetch('api/healthz').then((r) => r.text())")
    urls = page.evaluate(CACHED_URLS)
    assert urls and not [url for url in urls if "/api/" in url]
    assert {url.removeprefix(ui) for url in urls} == {
        "", "app.js", "styles.css", "manifest.webmanifest", "icons/icon.svg",
        "i18n/en.json", "i18n/fr.json", "i18n/sw.json", "i18n/pt.json", "ondevice.js",
        "preprocess.js"}


def test_old_caches_are_deleted_on_activation(page: Page, ui: str) -> None:
    page.goto(ui + "manifest.webmanifest")  # same origin, no worker registered yet
    page.evaluate(f"""async () => {{
        await (await caches.open('{CACHE_PREFIX}v0')).put('/stale', new Response('old shell'));
    }}""")
    open_page(page, ui)
    service_worker_state(page)
    names = page.evaluate("caches.keys()")
    assert len(names) == 1 and names[0].startswith(CACHE_PREFIX) and names[0] != f"{CACHE_PREFIX}v0"


def test_the_manifest_and_icons_make_it_installable(page: Page, ui: str,
                                                    local_stack: LocalStack) -> None:
    open_page(page, ui)
    assert page.eval_on_selector("link[rel=manifest]", "l => l.href") == ui + "manifest.webmanifest"
    response = local_stack.get(UI_HOST, "/manifest.webmanifest")
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    sizes = {}
    for icon in manifest["icons"]:
        image = local_stack.get(UI_HOST, "/" + icon["src"])
        assert image.status_code == 200
        assert image.headers["content-type"].startswith(icon["type"])
        if icon["type"] == "image/png":
            sizes[icon["sizes"]] = Image.open(io.BytesIO(image.content)).size
    assert sizes == {"192x192": (192, 192), "512x512": (512, 512)}


@pytest.fixture
def profile(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    """A non-incognito profile: Chromium reports installability only outside incognito."""
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield context
    context.close()


def test_chromium_finds_no_installability_errors(profile: BrowserContext, ui: str) -> None:
    page = profile.pages[0] if profile.pages else profile.new_page()
    open_page(page, ui)
    service_worker_state(page)
    cdp = profile.new_cdp_session(page)
    assert cdp.send("Page.getAppManifest").get("errors") == []
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
