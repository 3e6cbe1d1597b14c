"""The API's interactive documentation (Swagger UI at /docs), served with its assets from the
pinned fastapi-offline package: no CDN, works offline, and a Content-Security-Policy that
allows exactly these files (no inline script, no other origin)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
# URLs are relative to /docs, so the page also works under a path prefix (ROOT_PATH).
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - documentation</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""
# FastAPI's own Swagger UI settings, moved from an inline script into a file; no validator
# badge (it would load an image from another origin).
INIT = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""
# Scripts and styles from this origin only; images from here or data: URLs (Swagger UI's
# icons); fetches (the OpenAPI document, "Try it out") to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}


def install_docs(app: FastAPI) -> None:
    """GET /docs (the page), /docs/init.js and /docs/assets/* (Swagger UI's files)."""
    page = PAGE.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(INIT, media_type="text/javascript", headers=HEADERS)

    app.mount("/docs/assets", StaticFiles(directory=ASSETS), name="docs-assets")
