"""GET /metrics: Prometheus scrapes the API here, on the internal network (Traefik does not route
this path from the public hosts)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from app.core import metrics

router = APIRouter(tags=["metrics"])


@router.get(metrics.PATH, include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Every metric of this process (or of all workers in multiprocess mode), text format."""
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)
