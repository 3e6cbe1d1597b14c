"""A cheap phone's first load: under 60 KB, nothing from other hosts, the strict CSP holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, Request

from tests.support.local_stack import LocalStack
from tests.ui_service.browsing import (
    PAGE_CSP as CSP,
)
from tests.ui_service.browsing import (
    UI_HOST,
    Traffic,
    choose_photo,
    open_page,
    service_worker_state,
    wait_for_error,
    wait_for_result,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack]

FIRST_LOAD_BUDGET = 60_000  # bytes on the wire: headers + (compressed) bodies


def wire_bytes(request: Request) -> int:
    """Response headers + body as transferred. Where Chromium reports no body size (revalidated
    or worker-served responses) the decoded body length counts: an overestimate, never less."""
    sizes = request.sizes()
    body = sizes["responseBodySize"]
    if body <= 0:
        response = request.response()
        body = len(response.body()) if response and response.status == 200 else 0
    return sizes["responseHeadersSize"] + body


def test_the_first_load_stays_under_60_kb(page: Page, ui: str, traffic: Traffic,
                                          artifacts_dir: Path) -> None:
    open_page(page, ui)
    service_worker_state(page)  # its shell download (all four languages) counts too
    page.wait_for_load_state("networkidle")
    sizes = {f"{'sw ' if r.service_worker else ''}{r.url}": wire_bytes(r)
             for r in traffic.requests if r.url.startswith("http")}
    total = sum(sizes.values())
    report = "\n".join(f"{size:>7} {url}" for url, size in sizes.items())
    (artifacts_dir / "ui-first-load.txt").write_text(f"{report}\n{total:>7} total\n")
    assert total < FIRST_LOAD_BUDGET, report
    page_requests = [r for r in traffic.requests if not r.service_worker]
    assert all(r.response().header_value("content-encoding") == "gzip"  # type: ignore[union-attr]
               for r in page_requests if r.url.endswith((".js", ".css", ".json", "/")))


def test_no_request_leaves_for_another_host(page: Page, ui: str, traffic: Traffic,
                                            leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    service_worker_state(page)
    page.select_option("#lang", "fr")
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    page.reload()
    page.wait_for_selector("body.ready")
    assert traffic.requests
    assert {host for host in traffic.hosts()
            if host != "127.0.0.1" and not host.endswith(".localhost")} == set()


def test_the_csp_is_served_and_never_violated(page: Page, ui: str, traffic: Traffic,
                                              local_stack: LocalStack,
                                              leaf_photo_paths: list[Path]) -> None:
    assert local_stack.get(UI_HOST, "/").headers["content-security-policy"] == CSP
    with page.expect_response(ui) as first:
        open_page(page, ui)
    assert first.value.headers["content-security-policy"] == CSP
    service_worker_state(page)
    for language in ("sw", "pt", "en"):
        page.select_option("#lang", language)
    choose_photo(page, leaf_photo_paths[0])
    wait_for_result(page)
    page.evaluate("import('./app.js').then((app) => app.submit(new FormData()))")
    wait_for_error(page)
    page.reload()
    page.wait_for_selector("body.ready")
    assert traffic.csp_violations == []
    assert [e for e in traffic.console_errors if "Content Security Policy" in e] == []
    # The one console error allowed: the 422 answer the test provoked.
    assert [e for e in traffic.console_errors if "422" not in e] == []


def test_the_runtime_is_served_as_wasm_precompressed_and_cached_for_good(
        local_stack: LocalStack) -> None:
    pointer = local_stack.get(UI_HOST, "/vendor/runtime.json")
    assert pointer.status_code == 200 and pointer.headers["cache-control"] == "no-cache"
    runtime = pointer.json()
    for name in runtime["variants"]["relaxed_simd"]:
        reply = local_stack.get(UI_HOST, f"/vendor/{runtime['dir']}{name}",
                                headers={"Accept-Encoding": "gzip"})
        assert reply.status_code == 200, name
        assert reply.headers["content-encoding"] == "gzip", name  # the build's .gz copy
        assert int(reply.headers["content-length"]) == runtime["files"][name]["gzip_bytes"], name
        assert reply.headers["cache-control"] == "max-age=315360000", name
        assert reply.headers["content-security-policy"] == CSP, name
        if name.endswith(".wasm"):
            assert reply.headers["content-type"] == "application/wasm"
