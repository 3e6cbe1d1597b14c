"""Through Traefik, as a browser or an app sees the stack: the page, predictions on both hosts,
CORS, headers, and nothing of Traefik's own API or dashboard."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import httpx
import pytest

from tests.support.local_stack import API_HOST, UI_HOST, LocalStack
from tests.ui_service.browsing import PAGE_CSP as CSP

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLASSES = {"CBB", "CBSD", "CGM", "CMD", "Healthy"}
FOREIGN_ORIGIN = "http://evil.example"


def ui_origin(stack: LocalStack) -> str:
    return f"http://{UI_HOST}:{stack.port}"


def test_the_page_comes_through_traefik(local_stack: LocalStack) -> None:
    reply = local_stack.get(UI_HOST, "/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "<html" in reply.text.lower()
    # The page's own script, from the same origin.
    assert local_stack.get(UI_HOST, "/app.js").status_code == 200


@pytest.mark.parametrize("host, path", [(API_HOST, "/predict/image"),
                                        (UI_HOST, "/api/predict/image")])
def test_a_leaf_photo_gets_a_prediction(local_stack: LocalStack, leaf_photo_paths: list[Path],
                                        host: str, path: str) -> None:
    for photo in leaf_photo_paths:
        reply = local_stack.predict(host, path, photo)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["code"] in CLASSES
        assert {p["code"] for p in body["probabilities"]} == CLASSES
        assert sum(p["probability"] for p in body["probabilities"]) == pytest.approx(1, abs=1e-3)
        assert reply.headers["x-request-id"] == body["request_id"]


def test_the_api_prefix_is_stripped_only_on_the_ui_host(local_stack: LocalStack) -> None:
    assert local_stack.get(UI_HOST, "/api/readyz").status_code == 200
    assert local_stack.get(API_HOST, "/readyz").status_code == 200
    # /api is not a prefix of the API itself, nor does /apifoo reach it.
    assert local_stack.get(API_HOST, "/api/readyz").status_code == 404
    assert local_stack.get(UI_HOST, "/apireadyz").headers["content-type"].startswith("text/html")


def test_cors_allows_the_ui_origin(local_stack: LocalStack, leaf_photo_paths: list[Path]) -> None:
    origin = ui_origin(local_stack)
    reply = local_stack.predict(API_HOST, "/predict/image", leaf_photo_paths[0],
                                headers={"Origin": origin})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == origin
    assert "X-Request-ID" in reply.headers["access-control-expose-headers"]
    assert "Origin" in reply.headers["vary"]

    preflight = local_stack.request("OPTIONS", API_HOST, "/predict/image", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert int(preflight.headers["access-control-max-age"]) > 0


def test_cors_refuses_a_foreign_origin(local_stack: LocalStack) -> None:
    reply = local_stack.get(API_HOST, "/readyz", headers={"Origin": FOREIGN_ORIGIN})
    assert "access-control-allow-origin" not in reply.headers
    preflight = local_stack.request("OPTIONS", API_HOST, "/predict/image", headers={
        "Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    # The same origin on another port is another origin.
    other_port = local_stack.get(API_HOST, "/readyz",
                                 headers={"Origin": f"http://{UI_HOST}:1"})
    assert "access-control-allow-origin" not in other_port.headers


def test_the_ui_hosts_api_route_needs_no_cors(local_stack: LocalStack) -> None:
    reply = local_stack.get(UI_HOST, "/api/readyz", headers={"Origin": FOREIGN_ORIGIN})
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers


TRAEFIK_API_PATHS = ["/dashboard/", "/dashboard/#/", "/api/rawdata", "/api/overview",
                     "/api/http/routers", "/api/version", "/api/entrypoints", "/debug/vars",
                     "/ping"]


@pytest.mark.parametrize("host", [UI_HOST, API_HOST, "127.0.0.1", "localhost",
                                  "traefik.localhost", "[::1]"])
def test_no_dashboard_or_traefik_api_on_any_host(local_stack: LocalStack, host: str) -> None:
    for path in TRAEFIK_API_PATHS:
        reply = local_stack.get(host, path)
        assert reply.status_code == 404, (host, path, reply.status_code)
        assert "traefik" not in reply.text.lower()
        assert '"routers"' not in reply.text


def test_no_dashboard_on_the_ping_entrypoint(local_stack: LocalStack) -> None:
    ping = local_stack.service_ports("traefik")["ping"]
    assert httpx.get(f"http://127.0.0.1:{ping}/ping").status_code == 200
    for path in TRAEFIK_API_PATHS[:-1]:
        assert httpx.get(f"http://127.0.0.1:{ping}{path}").status_code == 404, path


def test_the_page_has_its_security_headers(local_stack: LocalStack) -> None:
    for path in ("/", "/app.js", "/no-such-file"):
        headers = local_stack.get(UI_HOST, path).headers
        assert headers["content-security-policy"] == CSP, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert "camera=(self)" in headers["permissions-policy"]
        assert "server" not in headers  # no banner, no version


def test_api_answers_have_security_headers(local_stack: LocalStack) -> None:
    for host, path in ((API_HOST, "/readyz"), (UI_HOST, "/api/readyz")):
        headers = local_stack.get(host, path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "server" not in headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_nginx_serves_static_files_only(local_stack: LocalStack, method: str) -> None:
    reply = local_stack.request(method, UI_HOST, "/index.html", content=b"x=1")
    assert reply.status_code == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert local_stack.request("HEAD", UI_HOST, "/").status_code == 200


def test_no_directory_listing(local_stack: LocalStack) -> None:
    reply = local_stack.get(UI_HOST, "/icons/")
    assert reply.status_code in (403, 404)
    assert "Index of" not in reply.text


def test_caching_and_types(local_stack: LocalStack) -> None:
    for path in ("/", "/index.html", "/sw.js"):
        assert local_stack.get(UI_HOST, path).headers["cache-control"] == "no-cache", path
    manifest = local_stack.get(UI_HOST, "/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert local_stack.get(UI_HOST, "/app.js").headers["content-type"].startswith(
        "application/javascript")


@pytest.mark.parametrize("path", ["/", "/app.js", "/styles.css"])
def test_text_is_gzipped(local_stack: LocalStack, path: str) -> None:
    reply = local_stack.get(UI_HOST, path, headers={"Accept-Encoding": "gzip"})
    assert reply.status_code == 200
    assert reply.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in reply.headers["vary"]


def proc_net_address(hex_address: str, width: int) -> str:
    """/proc/net/tcp{,6} write addresses as 32-bit words in host (little-endian) order."""
    raw = b"".join(bytes.fromhex(hex_address[i:i + 8])[::-1] for i in range(0, width, 8))
    address = ipaddress.ip_address(raw)
    mapped = getattr(address, "ipv4_mapped", None)  # gRPC binds 127.0.0.1 as ::ffff:127.0.0.1
    return str(mapped or address)


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                address, port = fields[1].split(":")
                found.add((proc_net_address(address, width), int(port, 16)))
    return found


def test_traefik_listens_only_on_loopback_web_and_ping(local_stack: LocalStack) -> None:
    """No other entrypoint exists (api.insecure would add one on :8080 for every interface)
    but the metrics one, on loopback too (docs/observability.md)."""
    ports = local_stack.service_ports("traefik")
    assert listening_addresses(local_stack.services["traefik"]) == {
        ("127.0.0.1", local_stack.port), ("127.0.0.1", ports["ping"]),
        ("127.0.0.1", ports["metrics"])}


@pytest.mark.parametrize("service", ["api", "nginx", "model-server"])
def test_internal_services_listen_on_loopback_only(local_stack: LocalStack, service: str) -> None:
    addresses = listening_addresses(local_stack.services[service])
    assert addresses
    for address, _ in addresses:
        assert address == "127.0.0.1", (service, addresses)


def test_nginx_hides_dotfiles_and_lists_no_directory(local_stack_factory, tmp_path: Path
                                                     ) -> None:
    """With a UI root of our own: files that exist but must not be served."""
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[core]")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "leaf.txt").write_text("a leaf")
    (tmp_path / "manifest.json").write_text("{}")
    stack = local_stack_factory(env={"UI_ROOT": str(tmp_path)})
    assert stack.get(UI_HOST, "/photos/leaf.txt").status_code == 200  # control: files are served
    for path in ("/.env", "/.git/config"):
        reply = stack.get(UI_HOST, path)
        assert reply.status_code == 404, path
        assert "SECRET" not in reply.text and "[core]" not in reply.text
    listing = stack.get(UI_HOST, "/photos/")
    assert listing.status_code in (403, 404)
    assert "leaf.txt" not in listing.text
    manifest = stack.get(UI_HOST, "/manifest.json")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
