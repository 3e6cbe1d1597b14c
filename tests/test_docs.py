"""Docs that list what the code does are checked against it: the proxy's route table in
docs/run-local.md (traefik/dynamic.yml's routers) and the API's endpoint table in
docs/api-service.md (the routes the app registers)."""

from __future__ import annotations

import re

from starlette.routing import Route

import app.main
from app.core.config import Settings
from app.routers import metrics
from tests.support.edge_config import route_table
from tests.support.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"


def test_the_route_table_in_run_local_md_is_dynamic_ymls() -> None:
    text = (DOCS / "run-local.md").read_text()
    documented = re.search(r"<!-- route table: begin -->\n(.*?)<!-- route table: end -->", text,
                           re.DOTALL)
    assert documented, "docs/run-local.md has no route table markers"
    expected = route_table()
    assert documented[1] == expected, (
        "docs/run-local.md's route table differs from traefik/dynamic.yml; paste this between "
        f"its markers:\n{expected}")


def test_the_route_table_follows_a_change_of_dynamic_yml() -> None:
    """The table is read from the file, not restated: a router added there shows up."""
    extra = ("\n  routers:\n    extra:\n      rule: \"Host(`x`)\"\n      priority: 5\n"
             "      middlewares: [request-id]\n      service: api\n")
    table = route_table((REPO_ROOT / "traefik" / "dynamic.yml").read_text().replace(
        "\n  routers:\n", extra, 1))
    assert "| `extra` | 5 | Host(x) | request-id | api |" in table


def test_the_api_endpoint_table_lists_exactly_the_apps_routes() -> None:
    """Every route of the app's routers (the OpenAPI ones and GET /metrics), no other."""
    api = app.main.create_app(Settings())
    served = {f"{method.upper()} {path}" for path, operations in api.openapi()["paths"].items()
              for method in operations}
    served |= {f"{method} {route.path}" for route in metrics.router.routes
               if isinstance(route, Route) for method in route.methods or () if method != "HEAD"}
    text = (DOCS / "api-service.md").read_text()
    table = [line for line in text.splitlines() if re.match(r"\| `(GET|POST) ", line)]
    documented = {entry for line in table
                  for entry in re.findall(r"`((?:GET|POST) /[^`]*)`", line.split(" | ")[0])}
    documented -= {"GET /docs", "GET /openapi.json"}  # FastAPI's own pages, also in the table
    assert served == documented
