"""app/server.py, the API's one server command line (`python -m app`). Every test that starts the
API (tests/api_service/conftest.py start_api) runs that command; the image, Swarm and run-local
use it too (tests/scripts/run_local/test_stack.py)."""

from __future__ import annotations

import httpx
import uvicorn

from app.core.config import Settings
from app.server import uvicorn_options
from tests.api_service.conftest import ApiServer


def test_the_settings_say_where_to_listen_and_whom_to_trust() -> None:
    settings = Settings(LISTEN_HOST="127.0.0.2", LISTEN_PORT=8123, WORKERS=2,
                        FORWARDED_ALLOW_IPS="10.0.0.0/8")
    config = uvicorn.Config("app.main:app", **uvicorn_options(settings))  # no unknown option
    assert (config.host, config.port, config.workers) == ("127.0.0.2", 8123, 2)
    assert config.proxy_headers and config.forwarded_allow_ips == "10.0.0.0/8"
    assert not config.server_header


def test_the_command_serves_without_saying_what_it_runs(seed_api: ApiServer) -> None:
    reply = httpx.get(f"{seed_api.base_url}/healthz")
    assert reply.status_code == 200
    assert "server" not in reply.headers
