"""Diagnosis without network in Chromium, on the real no-Docker stack serving the article's model
with its on-device artifact (scripts/make-on-device-model): the opt-in pack (LiteRT.js from
vendor/ + the artifact, SHA-256 checked, kept in the Cache Storage), the fixture photos diagnosed
with the network cut (context offline) giving the server's answers (same class, every probability
within 0.02), and the faults: a damaged download, no storage, no WebAssembly, a served version
without artifact, a new version replacing the pack."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack, start_local_stack
from tests.support.on_device import article_repository
from tests.support.paths import SCRIPTS_DIR
from tests.support.waiting import wait_until
from tests.ui_service.browsing import (
    Traffic,
    choose_photo,
    open_page,
    service_worker_state,
    strings,
    ui_url,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.slow]

EN = strings("en")
MAX_DRIFT = 0.02  # #22: every probability within 0.02 of the server's
# In the page: the exact probabilities the phone computes for one photo (bytes), with the pack.
ON_DEVICE = """async (b64) => {
  const ondevice = await import('./ondevice.js');
  const pack = await ondevice.currentPack();
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const answer = await ondevice.diagnoseOnDevice(new File([bytes], 'leaf.jpg'), pack);
  return Object.fromEntries(answer.probabilities.map((p) => [p.code, p.probability]));
}"""
PACK_CACHES = ("async () => (await caches.keys())"
               ".filter((name) => name.startsWith('cassava-offline-'))")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return article_repository(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def offline_stack(repository: Path, logs_dir: Path) -> Iterator[LocalStack]:
    running = start_local_stack(logs_dir, model_base_path=repository, model_name="cassava")
    yield running
    running.stop()


def server_answer(stack: LocalStack, photo: Path) -> dict[str, Any]:
    reply = stack.predict(API_HOST, "/predict/image", photo)
    assert reply.status_code == 200, reply.text
    return reply.json()


def served_version(stack: LocalStack) -> int | None:
    reply = stack.get(API_HOST, "/v1/model")
    return reply.json()["version"] if reply.status_code == 200 else None


def offline_status(page: Page) -> str:
    return page.inner_text("#offline-status")


def install_pack(page: Page, ui: str) -> None:
    """Open the page (its service worker in control) and opt in; wait until the pack verified."""
    open_page(page, ui)
    service_worker_state(page)
    page.reload()  # controlled from now on: offline, the worker answers the runtime's files
    page.wait_for_selector("body.ready")
    expect(page.locator("#offline-toggle")).to_be_enabled()
    expect(page.locator("#offline-size")).to_contain_text(" MB once")
    page.check("#offline-toggle")
    page.wait_for_function("() => document.documentElement.dataset.offlineReady", timeout=120_000)


def test_the_photos_are_diagnosed_on_the_phone_with_the_network_cut(
        page: Page, context: BrowserContext, traffic: Traffic, offline_stack: LocalStack,
        leaf_photo_paths: list[Path], artifacts_dir: Path) -> None:
    served = {photo.name: server_answer(offline_stack, photo) for photo in leaf_photo_paths}
    install_pack(page, ui_url(offline_stack))
    assert page.get_attribute("html", "data-offline-ready") == "1"
    assert offline_status(page) == EN["offline.ready"].format(version=1)

    context.set_offline(True)
    page.reload()
    page.wait_for_selector("body.ready")
    assert page.get_attribute("html", "data-offline-ready") == "1"
    assert page.inner_text("#offline") == EN["offline.banner_device"].format(version=1)
    for photo in leaf_photo_paths:
        choose_photo(page, photo)
        wait_for_result(page)
        result = page.locator("#result")
        assert result.get_attribute("data-source") == "device"
        assert result.get_attribute("data-code") == served[photo.name]["code"], photo.name
        assert page.inner_text("#result-source") == EN["result.on_device"].format(version=1)
        expect(page.locator("#demo-notice")).to_be_hidden()  # the article's card: not a demo
    assert traffic.uploads() == []  # nothing was sent

    # Fidelity, in Chromium itself: the exact probabilities against the server's.
    report = []
    for photo in leaf_photo_paths:
        phone = page.evaluate(ON_DEVICE, base64.b64encode(photo.read_bytes()).decode())
        server = {p["code"]: p["probability"] for p in served[photo.name]["probabilities"]}
        drift = max(abs(phone[code] - server[code]) for code in server)
        report.append(f"{photo.name}: server {served[photo.name]['code']}, phone "
                      f"{max(phone, key=phone.get)}, max |dp| {drift:.6f}")
        assert max(phone, key=phone.get) == served[photo.name]["code"], report[-1]
        assert drift <= MAX_DRIFT, report[-1]
    (artifacts_dir / "ui-on-device-fidelity.txt").write_text("\n".join(report) + "\n")

    # Back online: the server answers again.
    context.set_offline(False)
    choose_photo(page, leaf_photo_paths[0])
    page.wait_for_selector("#result[data-source=server]:not([hidden])")


def test_a_damaged_download_is_discarded_and_the_page_works_online(
        page: Page, offline_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    def truncated(route: Route) -> None:  # the real file, cut short on the way
        real = offline_stack.get(UI_HOST, urlsplit(route.request.url).path)
        route.fulfill(status=200, body=real.content[:-1000],
                      headers={"Content-Type": real.headers["content-type"]})

    page.route("**/on-device/*.tflite", truncated)
    open_page(page, ui_url(offline_stack))
    page.check("#offline-toggle")
    expect(page.locator("#offline-status")).to_have_text(EN["offline.bad_download"])
    expect(page.locator("#offline-toggle")).not_to_be_checked()
    assert page.get_attribute("html", "data-offline-ready") is None
    assert page.evaluate(PACK_CACHES) == []
    choose_photo(page, leaf_photo_paths[0])
    page.wait_for_selector("#result[data-source=server]:not([hidden])")


def test_no_storage_left_says_so(page: Page, offline_stack: LocalStack) -> None:
    ui = ui_url(offline_stack)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin",
             {"origin": ui.rstrip("/"), "quotaSize": 1_000_000})  # smaller than the pack
    open_page(page, ui)
    page.check("#offline-toggle")
    expect(page.locator("#offline-status")).to_contain_text(
        EN["offline.no_space"].split("(")[0])
    assert page.get_attribute("html", "data-offline-ready") is None
    assert page.evaluate(PACK_CACHES) == []


def test_without_webassembly_the_page_diagnoses_online_and_says_so(
        page: Page, offline_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    page.add_init_script("delete globalThis.WebAssembly;")
    open_page(page, ui_url(offline_stack))
    expect(page.locator("#offline-status")).to_have_text(EN["offline.unsupported"])
    expect(page.locator("#offline-toggle")).to_be_disabled()
    choose_photo(page, leaf_photo_paths[0])
    page.wait_for_selector("#result[data-source=server]:not([hidden])")


def test_a_version_without_artifact_keeps_the_pack_and_a_new_one_replaces_it(
        page: Page, context: BrowserContext, offline_stack: LocalStack, repository: Path,
        leaf_photo_paths: list[Path]) -> None:
    """Last in this module: it publishes version 2 into the shared stack."""
    ui = ui_url(offline_stack)
    install_pack(page, ui)
    assert page.get_attribute("html", "data-offline-ready") == "1"
    first = page.evaluate(PACK_CACHES)

    # Version 2 without an artifact: the page keeps the verified copy of 1 and says so.
    model_dir = repository / "cassava"
    shutil.copytree(model_dir / "1", model_dir / "2", ignore=shutil.ignore_patterns("assets.extra"))
    wait_until(lambda: served_version(offline_stack) == 2, 120, "version 2 served")
    page.reload()
    page.wait_for_selector("body.ready")
    expect(page.locator("#offline-status")).to_have_text(
        EN["offline.kept"].format(server=2, version=1))
    assert page.get_attribute("html", "data-offline-ready") == "1"
    assert page.evaluate(PACK_CACHES) == first
    context.set_offline(True)
    choose_photo(page, leaf_photo_paths[0])
    page.wait_for_selector("#result[data-source=device]:not([hidden])")
    assert page.inner_text("#result-source") == EN["result.on_device"].format(version=1)
    context.set_offline(False)

    # Its artifact published: the next online visit replaces the pack, once the new one verified.
    made = subprocess.run([SCRIPTS_DIR / "make-on-device-model", repository, "--version", "2"],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    page.reload()
    page.wait_for_function(
        "() => document.documentElement.dataset.offlineReady === '2'", timeout=120_000)
    packs = page.evaluate(PACK_CACHES)
    assert len(packs) == 1 and packs != first
