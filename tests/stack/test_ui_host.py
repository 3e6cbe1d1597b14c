"""Small things on the two hosts: trailing slashes under /api on the page's host, where the API's
documentation is offered, and that its page loads nothing from another origin."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.mark.parametrize("method, path, status", [
    ("POST", "/api/predict/image/", 307), ("POST", "/api/v1/predict/image//", 307),
    ("GET", "/api/readyz/", 302), ("GET", "/api/readyz/?probe=1", 302)])
def test_a_trailing_slash_keeps_the_api_prefix(local_stack: LocalStack, method: str, path: str,
                                               status: int) -> None:
    reply = local_stack.request(method, UI_HOST, path, content=b"")
    assert reply.status_code == status
    location = urlsplit(reply.headers["location"])
    assert location.path == path.split("?")[0].rstrip("/")
    assert location.query == urlsplit(path).query


def test_the_redirect_leads_to_a_prediction(local_stack: LocalStack,
                                            leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0].read_bytes()
    first = local_stack.predict(UI_HOST, "/api/predict/image/", photo)
    assert first.status_code == 307  # a client follows it with the same POST and body
    reply = local_stack.predict(UI_HOST, urlsplit(first.headers["location"]).path, photo)
    assert reply.status_code == 200, reply.text
    assert reply.json()["code"]


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/", "/api/redoc", "/api/openapi.json",
                                  "/api/docs/oauth2-redirect"])
def test_the_api_documentation_is_not_offered_on_the_page_host(local_stack: LocalStack,
                                                               path: str) -> None:
    """Not a documentation page that loads a document from a path that 404s: a plain 404."""
    reply = local_stack.get(UI_HOST, path)
    assert reply.status_code == 404
    assert "swagger" not in reply.text.lower() and '"openapi"' not in reply.text


def test_the_documentation_page_uses_local_files_only(local_stack: LocalStack) -> None:
    page = local_stack.get(API_HOST, "/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "default-src 'none'" in csp and "unsafe" not in csp
    assert "http" not in csp  # no other origin
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # no inline script (the CSP would block it)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(not re.match(r"[a-z]+:", source) for source in sources), sources
    for source in sources:  # every file the page names is served, relative to /docs
        asset = local_stack.get(API_HOST, "/" + source)
        assert asset.status_code == 200, source
    openapi = local_stack.get(API_HOST, "/openapi.json")
    assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.")
    assert local_stack.get(API_HOST, "/redoc").status_code == 404  # ReDoc needs a CDN: off
