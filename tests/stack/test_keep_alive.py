"""Traefik's idle connections to the API are closed by Traefik (idleConnTimeout), never first by
uvicorn: a request after an idle spell reuses a connection that is still open on both sides,
instead of racing uvicorn's close (a rare 502). The settings themselves are compared in
tests/scripts/run_local/test_stack.py."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from tests.support.local_stack import API_HOST, LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

UVICORN_DEFAULT_KEEP_ALIVE = 5.0  # seconds: what the API had before --timeout-keep-alive


def proxy_connections_to_api(stack: LocalStack) -> set[tuple[int, str]]:
    """(Traefik's local port, state) of each TCP connection from Traefik to the API."""
    api_port = stack.service_ports("api")["http"]
    traefik = psutil.Process(stack.services["traefik"])
    return {(c.laddr.port, c.status) for c in traefik.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == api_port}


def test_an_upload_after_an_idle_spell_reuses_an_open_connection(
        local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    photo = leaf_photo_paths[0]
    assert local_stack.predict(API_HOST, "/predict/image", photo).status_code == 200
    before = proxy_connections_to_api(local_stack)
    assert any(state == psutil.CONN_ESTABLISHED for _, state in before), before
    time.sleep(UVICORN_DEFAULT_KEEP_ALIVE + 1.5)
    # Still open: uvicorn did not close them (it would have after 5 s; Traefik then sees
    # CLOSE_WAIT, or has dropped them).
    idle = proxy_connections_to_api(local_stack)
    assert {p for p, s in idle if s == psutil.CONN_ESTABLISHED} & {p for p, _ in before}, idle
    reply = local_stack.predict(API_HOST, "/predict/image", photo)
    assert reply.status_code == 200, reply.text
    after = proxy_connections_to_api(local_stack)
    assert {p for p, s in after if s == psutil.CONN_ESTABLISHED} & {p for p, _ in before}, after
