"""The API's one server command line: `python -m app` (api.service/Dockerfile's CMD, the Swarm
stack's entrypoint and scripts/run-local all run it) starts uvicorn with these options, where it
listens and whom it trusts read from Settings (the environment)."""

from __future__ import annotations

from typing import Any

import uvicorn

from app.core.config import Settings, settings_from_environment

# In-flight predictions get this long after SIGTERM, then uvicorn exits (compose and Swarm give
# the container DRAIN_SECONDS + this before SIGKILL).
GRACEFUL_SHUTDOWN_SECONDS = 3
# Longer than Traefik's idle upstream connections (idleConnTimeout 90s in traefik/dynamic.yml;
# uvicorn's default is 5 s), so the proxy closes an idle connection first and never sends a
# request on one uvicorn is closing (a 502). tests/api_service/test_server.py compares them.
KEEP_ALIVE_SECONDS = 100


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run's arguments for these settings."""
    return {
        "host": settings.LISTEN_HOST,
        "port": settings.LISTEN_PORT,
        "workers": settings.WORKERS,
        # Client address and scheme from the proxy's X-Forwarded-*, trusted only from these.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.FORWARDED_ALLOW_IPS,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "server_header": False,  # no "server: uvicorn" telling a scanner what runs here
        "access_log": False,  # app.core.metrics writes the access log line (with request ids)
    }


def main() -> None:
    uvicorn.run("app.main:app", **uvicorn_options(settings_from_environment()))
