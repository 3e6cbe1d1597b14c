"""docker-compose.yml + docker-compose.https.yml with the real engine (docs/tls.md), Pebble as
the CA on the project's network: Traefik's image gets a certificate for both names over ACME
(HTTP-01 validated for real: Pebble resolves the names through Docker's DNS to Traefik's
aliases), serves HTTPS on the published HTTPS_PORT with HSTS and h2, redirects plain HTTP,
keeps acme.json (0600) in the named volume and reuses it after `compose restart traefik`.
One compose up."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compose.conftest import running_stack
from tests.compose.project import HTTPS_COMPOSE_FILE, ComposeProject, run
from tests.support.certs import write_self_signed
from tests.support.ports import free_port
from tests.support.tls_client import dns_names, handshake, https_request, trusting
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NAMES = ("ui.cassava.test", "api.cassava.test")
PEBBLE_IMAGE = "cassava-test/pebble:local"
PEBBLE_DOCKERFILE = Path(__file__).parent / "pebble"


def pebble_files(directory: Path) -> Path:
    """Pebble's configuration and API certificate (name `pebble`), readable by its user."""
    directory.mkdir()
    cert, key = write_self_signed(directory / "api", "pebble", "127.0.0.1")
    for path in (directory, cert, key):
        path.chmod(0o755 if path.is_dir() else 0o644)  # test-only key: the container reads it
    (directory / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/pebble/api.crt", "privateKey": "/pebble/api.key",
        # Traefik's container ports: HTTP-01 arrives on `web`.
        "httpPort": 8080, "tlsPort": 8443,
        "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
    return cert


def pebble_overlay(directory: Path, pebble: Path) -> Path:
    overlay = directory / "pebble.yml"
    overlay.write_text(f"""
services:
  pebble:
    image: {PEBBLE_IMAGE}
    command: ["-config", "/pebble/pebble.json", "-dnsserver", "127.0.0.11:53"]
    environment: {{PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0"}}
    volumes: ["{pebble}:/pebble:ro"]
    networks: [edge]
    ports: ["127.0.0.1::15000"]
    read_only: true
  traefik:
    depends_on: [pebble]
    volumes: ["{pebble}/api.crt:/pebble/api.crt:ro"]
    networks:
      edge:
        aliases: [{", ".join(NAMES)}]
""")
    return overlay


@pytest.fixture(scope="module")
def https_stack(offline_bases: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
                artifacts_dir: Path) -> Iterator[tuple[ComposeProject, int, Path]]:
    run(["docker", "build", "--quiet", "--build-arg",
         f"PYTHON_IMAGE={offline_bases['PYTHON_IMAGE']}", "--tag", PEBBLE_IMAGE,
         str(PEBBLE_DOCKERFILE)], timeout=600)
    work = tmp_path_factory.mktemp("compose-https")
    api_cert = pebble_files(work / "pebble")
    https_port = free_port()
    settings = {"UI_HOST": NAMES[0], "API_HOST": NAMES[1], "HTTPS_BIND": "127.0.0.1",
                "HTTPS_PORT": str(https_port), "ACME_EMAIL": "operator@cassava.test",
                "ACME_CA_SERVER": "https://pebble:14000/dir",
                "LEGO_CA_CERTIFICATES": "/pebble/api.crt"}
    overlays = (HTTPS_COMPOSE_FILE, pebble_overlay(work, work / "pebble"))
    with running_stack(offline_bases, work, artifacts_dir / "compose-https.log",
                       extra_settings=settings, overrides=overlays) as project:
        management = project.compose("port", "pebble", "15000").stdout.strip().rsplit(":", 1)[1]
        context = ssl.create_default_context(cafile=str(api_cert))
        root = work / "pebble-root.pem"
        root.write_text(httpx.get(f"https://127.0.0.1:{management}/roots/0",
                                  verify=context).text)
        yield project, https_port, root


def orders(project: ComposeProject) -> int:
    return project.logs("pebble", tail=100000).count("Added order ")


def issued(port: int, root: Path) -> bool:
    try:
        return all(dns_names(handshake(port, name, trusting(root)).certificate) == [name]
                   for name in NAMES)
    except (ssl.SSLError, OSError):
        return False


def test_compose_serves_both_names_over_https_from_the_acme_ca(
        https_stack: tuple[ComposeProject, int, Path]) -> None:
    project, port, root = https_stack
    wait_until(lambda: issued(port, root), 90, "certificates from Pebble for both names",
               every=1)
    for name in NAMES:
        assert handshake(port, name, trusting(root)).alpn == "h2"
    page = https_request("GET", port, NAMES[0], "/", root)
    assert page.status_code == 200
    assert int(page.headers["strict-transport-security"].split("=")[1]) >= 31536000
    redirect = httpx.post(f"http://127.0.0.1:{project.port}/predict/image",
                          headers={"Host": NAMES[1]})
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://{NAMES[1]}:{port}/predict/image"
    mode = project.exec("traefik", "stat", "-c", "%a %u", "/var/lib/traefik/acme.json")
    assert mode.stdout.split() == ["600", "65534"], mode.stderr


def test_a_restart_reuses_the_volume_and_orders_nothing(
        https_stack: tuple[ComposeProject, int, Path]) -> None:
    project, port, root = https_stack
    wait_until(lambda: issued(port, root), 90, "certificates", every=1)
    before, placed = orders(project), handshake(port, NAMES[0], trusting(root)).certificate
    project.compose("restart", "traefik", timeout=120)
    wait_until(lambda: issued(port, root), 60, "HTTPS after the restart", every=0.5)
    assert handshake(port, NAMES[0], trusting(root)).certificate == placed
    assert orders(project) == before
