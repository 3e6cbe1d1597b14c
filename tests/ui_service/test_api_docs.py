"""The API's documentation page (Swagger UI at api.service.localhost/docs) in Chromium: it
renders the API's operations under its Content-Security-Policy, from this origin only."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests.support.local_stack import API_HOST, LocalStack
from tests.ui_service.browsing import Traffic

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.browser]


def test_swagger_ui_renders_with_its_csp(local_stack: LocalStack, page: Page,
                                         traffic: Traffic) -> None:
    page.goto(local_stack.url(API_HOST, "/docs"))
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/predict/image" in paths
    assert traffic.csp_violations == []
    assert traffic.hosts() == {API_HOST}  # nothing from a CDN
