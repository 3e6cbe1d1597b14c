"""run_local.stack: what the runner gives Traefik besides its static file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.server import KEEP_ALIVE_SECONDS
from run_local.config import INTERNAL_PORTS, REPO, entry_point_port_name, read_config
from run_local.stack import (
    TRAEFIK_GODEBUG,
    services,
    traefik_addresses,
    traefik_entry_points,
)


def test_traefik_gets_the_same_godebug_as_the_image() -> None:
    """h2c is off through Go's runtime setting, in the image and in run-local alike."""
    dockerfile = (REPO / "traefik" / "Dockerfile").read_text()
    assert re.search(rf"^\s*GODEBUG={re.escape(TRAEFIK_GODEBUG)}\s*$", dockerfile, re.MULTILINE)
    assert "http2server=0" in TRAEFIK_GODEBUG


def test_every_entry_point_listens_on_loopback() -> None:
    ports = {"PORT": 9000, "PING_PORT": 9001, "METRICS_PORT": 9002}
    assert traefik_addresses(ports, ["web", "ping", "metrics"]) == {
        "web": "127.0.0.1:9000", "ping": "127.0.0.1:9001", "metrics": "127.0.0.1:9002"}


def seconds(text: str) -> float:
    """A Go duration of whole units (90s, 2m) or a plain number of seconds."""
    match = re.fullmatch(r"(\d+)(s|m)?", text.strip().strip('"'))
    assert match, text
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_upstreams_keep_idle_connections_longer_than_the_proxy_does() -> None:
    """Traefik's idle upstream connections close before the API's (uvicorn) and nginx's: the
    proxy never sends a request on a connection the upstream is closing (a rare 502)."""
    dynamic = (REPO / "traefik" / "dynamic.yml").read_text()
    (proxy_idle,) = re.findall(r"^\s*idleConnTimeout:\s*(\S+)", dynamic, re.MULTILINE)
    nginx = (REPO / "ui.service" / "nginx" / "default.conf").read_text()
    (nginx_keep_alive,) = re.findall(r"^\s*keepalive_timeout\s+(\S+);", nginx, re.MULTILINE)
    for upstream in (KEEP_ALIVE_SECONDS, seconds(nginx_keep_alive)):
        assert upstream > seconds(proxy_idle) + 1


def test_run_local_serves_the_api_with_the_images_command_line(tmp_path: Path) -> None:
    """`python -m app` (app/server.py) in the image, the Swarm stack and run-local: one command
    line; run-local only says where to listen."""
    ports = dict.fromkeys(("PORT", *INTERNAL_PORTS,
                           *(entry_point_port_name(e) for e in traefik_entry_points())), 1)
    config = read_config({"RUN_DIR": str(tmp_path)}, tmp_path)
    (api,) = [s for s in services(config, ports, "nginx") if s.name == "api"]
    assert api.argv[1:] == ["-m", "app"]
    assert (api.env["LISTEN_HOST"], api.env["LISTEN_PORT"]) == ("127.0.0.1", str(ports["API_PORT"]))
    dockerfile = (REPO / "api.service" / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD\s*(\[.*?\])\s*$", dockerfile, re.MULTILINE)
    assert json.loads(cmd) == ["python", "-m", "app"]
    stack = (REPO / "deploy" / "swarm" / "stack.yml").read_text()
    assert re.findall(r"^\s*python -m app &$", stack, re.MULTILINE)
    for text in (dockerfile, stack):  # no second copy of the options anywhere
        assert "--timeout-keep-alive" not in text and "app.main:app" not in text


def traefik_service(env: dict[str, str], tmp_path: Path):
    ports = dict.fromkeys(("PORT", *INTERNAL_PORTS,
                           *(entry_point_port_name(e) for e in traefik_entry_points())), 1)
    config = read_config({"RUN_DIR": str(tmp_path), **env}, tmp_path)
    (traefik,) = [s for s in services(config, ports, "nginx") if s.name == "traefik"]
    return config, traefik


def test_plain_http_keeps_h2c_off_and_no_https_setting_leaks_in(tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("ACME_EMAIL", "from-the-shell@example.org")  # not read by services()
    config, traefik = traefik_service({}, tmp_path)
    assert traefik.env["GODEBUG"] == TRAEFIK_GODEBUG
    assert traefik.env["ACME_EMAIL"] == "" and traefik.env["TLS_CERT_FILE"] == ""
    assert "https" not in traefik.ports and traefik_entry_points(config) == [
        "web", "ping", "metrics"]
    assert traefik.env["UI_ORIGINS"] == "http://ui.service.localhost:8080"


def test_https_lifts_the_h2c_setting_and_hands_traefik_its_settings(tmp_path: Path) -> None:
    """GODEBUG=http2server=0 would break HTTP/2 over TLS; `web` only redirects then."""
    _, traefik = traefik_service({"ACME_EMAIL": "ops@example.org", "HTTPS_PORT": "443",
                                  "UI_HOST": "ui.example.org"}, tmp_path)
    assert "GODEBUG" not in traefik.env or "http2server=0" not in traefik.env["GODEBUG"]
    assert traefik.env["ACME_EMAIL"] == "ops@example.org"
    assert traefik.env["ACME_STORAGE"] == str(tmp_path / "acme.json")
    # Through the image's start script, which adds the resolver and keeps asking the CA.
    assert traefik.argv == ["sh", str(REPO / "traefik" / "entrypoint.sh")]
    assert traefik.env["TRAEFIK_CONFIG_DIR"] == str(tmp_path)
    assert traefik.env["HTTPS_PORT"] == "443" and traefik.ports["https"] == 1
    assert traefik.env["UI_ORIGINS"] == "https://ui.example.org:443,https://ui.example.org"
    assert traefik.env["UI_HOST"] == "ui.example.org"
