"""Browser fixtures: Debian's Chromium driven by Playwright against the real no-Docker stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.support.local_stack import LocalStack
from tests.ui_service.browsing import CHROMIUM, CHROMIUM_ARGS, Traffic, UploadRecorder, ui_url


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def context_options() -> dict[str, Any]:
    """new_context() keyword arguments; tests override this fixture (device, locale)."""
    return {"locale": "en-GB"}


@pytest.fixture
def context(browser: Browser, context_options: dict[str, Any]) -> Iterator[BrowserContext]:
    """A fresh profile (no cache, no service worker) per test."""
    ctx = browser.new_context(**context_options)
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def traffic(context: BrowserContext) -> Traffic:
    """Every request the context makes (page and service worker), CSP violations, console errors."""
    return Traffic.watch(context)


@pytest.fixture
def page(context: BrowserContext, traffic: Traffic) -> Page:
    return context.new_page()


@pytest.fixture
def sent(page: Page) -> UploadRecorder:
    """The exact bodies of the page's uploads to the API."""
    return UploadRecorder(page)


@pytest.fixture(scope="session")
def ui(local_stack: LocalStack) -> str:
    """The page's address: http://ui.service.localhost:PORT/ (Chromium resolves it to 127.0.0.1)."""
    return ui_url(local_stack)
