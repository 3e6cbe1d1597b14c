"""app.docs: Swagger UI from the pinned package's files, with a CSP that allows exactly them
(in process, no server)."""

from __future__ import annotations

import asyncio
import re

import httpx
from fastapi import FastAPI

from app.docs import ASSETS, CSP, install_docs


class DocsClient:
    """GET requests to an app with only the documentation installed, in process."""

    def __init__(self) -> None:
        self.app = FastAPI(title="T", docs_url=None, redoc_url=None)
        install_docs(self.app)

    def get(self, path: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.get(path)
        return asyncio.run(fetch())


def docs_client() -> DocsClient:
    return DocsClient()


def test_the_page_names_only_local_files_and_no_inline_script() -> None:
    page = docs_client().get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert not re.search(r"<script>|<style|style=|on\w+=", page.text)  # nothing inline
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources == ["docs/assets/swagger-ui.css", "docs/assets/favicon.png",
                       "docs/assets/swagger-ui-bundle.js", "docs/init.js"]


def test_every_file_the_page_names_is_served() -> None:
    client = docs_client()
    for path, kind in (("/docs/assets/swagger-ui.css", "text/css"),
                       ("/docs/assets/swagger-ui-bundle.js", "javascript"),
                       ("/docs/assets/favicon.png", "image/png"),
                       ("/docs/init.js", "javascript")):
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert kind in reply.headers["content-type"], path
    assert "SwaggerUIBundle(" in client.get("/docs/init.js").text
    assert client.get("/docs/assets/../../../../etc/passwd").status_code == 404


def test_the_bundle_renders_openapi_3_1() -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot render: the pinned files are 5.x."""
    bundle = (ASSETS / "swagger-ui-bundle.js").read_text(errors="replace")
    versions = re.findall(r'"(5\.\d+\.\d+)"', bundle)
    assert versions, "no Swagger UI 5 version string in the bundle"
    assert FastAPI().openapi()["openapi"].startswith("3.1")


def test_the_csp_allows_no_other_origin_and_nothing_inline() -> None:
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert "unsafe" not in CSP and "http" not in CSP
