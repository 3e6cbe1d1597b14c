"""run_local.stack: what the runner gives Traefik besides its static file."""

from __future__ import annotations

import re

from run_local.config import REPO
from run_local.stack import TRAEFIK_GODEBUG, traefik_addresses


def test_traefik_gets_the_same_godebug_as_the_image() -> None:
    """h2c is off through Go's runtime setting, in the image and in run-local alike."""
    dockerfile = (REPO / "traefik" / "Dockerfile").read_text()
    assert re.search(rf"^\s*GODEBUG={re.escape(TRAEFIK_GODEBUG)}\s*$", dockerfile, re.MULTILINE)
    assert "http2server=0" in TRAEFIK_GODEBUG


def test_every_entry_point_listens_on_loopback() -> None:
    ports = {"PORT": 9000, "PING_PORT": 9001, "METRICS_PORT": 9002}
    assert traefik_addresses(ports, ["web", "ping", "metrics"]) == {
        "web": "127.0.0.1:9000", "ping": "127.0.0.1:9001", "metrics": "127.0.0.1:9002"}
