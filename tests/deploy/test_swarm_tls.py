"""HTTPS in the Swarm stack (deploy/swarm/stack.tls.yml, docs/tls.md): the operator's own
certificate from Swarm secrets, on every node's Traefik. `docker stack config` (the CLI only, no
engine) reads the two files as `docker stack deploy` does; deploy/swarm/traefik-upstreams.sh runs
on the checkout with a stand-in `traefik` (tests/support/traefik_stand_in.py) and must start
Traefik through traefik/entrypoint.sh, so that TLS and ACME settings take effect as in compose."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import traefik_stand_in
from tests.support.absent import skip_or_fail
from tests.support.paths import REPO_ROOT

SWARM_DIR = REPO_ROOT / "deploy" / "swarm"
HTTPS_SETTINGS = ("ACME_EMAIL", "ACME_CA_SERVER", "TLS_CERT_FILE", "TLS_KEY_FILE",
                  "LEGO_CA_CERTIFICATES", "UI_ORIGINS", "HTTPS_PORT")


def stack_config(tmp_path: Path, *files: str, **env: str) -> dict[str, Any]:
    if shutil.which("docker") is None:
        skip_or_fail("no docker CLI (needed for `docker stack config`)")
    command = ["docker", "stack", "config"]
    for name in files:
        command += ["-c", str(SWARM_DIR / name)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                            cwd=REPO_ROOT, env={"PATH": os.environ["PATH"],
                                                "HOME": str(tmp_path), **env})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_tls_overlay_serves_https_on_every_node_from_secrets(tmp_path: Path) -> None:
    traefik = stack_config(tmp_path, "stack.yml", "stack.tls.yml")["services"]["traefik"]
    assert stack_config(tmp_path, "stack.yml", "stack.tls.yml", UI_HOST="ui.example.org")[
        "services"]["traefik"]["environment"]["UI_ORIGINS"] == "https://ui.example.org"
    ports = {(port["target"], str(port["published"]), port["mode"]) for port in traefik["ports"]}
    assert ports == {(8080, "80", "host"), (8443, "443", "host")}
    env = traefik["environment"]
    assert (env["TLS_CERT_FILE"], env["TLS_KEY_FILE"]) == ("/run/secrets/site.crt",
                                                            "/run/secrets/site.key")
    assert env["UI_ORIGINS"] == "https://ui.service.localhost"  # the page's HTTPS origin
    secrets = {secret["target"]: secret for secret in traefik["secrets"]}
    assert secrets.keys() == {"site.crt", "site.key"}
    for secret in secrets.values():  # nobody (Traefik's user) alone may read them
        assert (secret["uid"], secret["gid"], secret["mode"]) == ("65534", "65534", 0o400)


def test_without_the_overlay_the_stack_stays_plain_http(tmp_path: Path) -> None:
    traefik = stack_config(tmp_path, "stack.yml")["services"]["traefik"]
    assert [port["target"] for port in traefik["ports"]] == [8080]
    assert not {"TLS_CERT_FILE", "ACME_EMAIL"} & traefik["environment"].keys()
    assert "secrets" not in traefik


def start_upstreams_script(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run traefik-upstreams.sh until its (stand-in) Traefik exits; its refresh loop, left
    behind as the stand-in's orphan, is ended with the process group."""
    bin_dir = traefik_stand_in.install(tmp_path / "bin")
    clean = {k: v for k, v in os.environ.items() if k not in HTTPS_SETTINGS}
    output = tmp_path / "stdout.txt"
    with output.open("w") as stdout:
        process = subprocess.Popen(
            ["sh", str(SWARM_DIR / "traefik-upstreams.sh")], stdout=stdout,
            stderr=subprocess.STDOUT, start_new_session=True, env={
                **clean, "PATH": f"{bin_dir}:{clean['PATH']}", "TMPDIR": str(tmp_path),
                "TRAEFIK_CONFIG_DIR": str(REPO_ROOT / "traefik"),
                "UPSTREAMS_DIR": str(tmp_path / "run"), "UPSTREAMS_REFRESH_SECONDS": "60",
                # Names that resolve nowhere: the script writes empty server lists.
                "API_TASKS": "tasks.api.invalid", "UI_TASKS": "tasks.ui.invalid",
                "GODEBUG": "http2server=0", **env})
        try:
            status = process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    return status, output.read_text()


def test_the_swarm_entrypoint_starts_traefik_through_the_image_entrypoint(
        tmp_path: Path) -> None:
    status, stdout = start_upstreams_script(tmp_path, TLS_CERT_FILE="/run/secrets/site.crt",
                                            TLS_KEY_FILE="/run/secrets/site.key")
    assert status == 0, stdout
    # entrypoint.sh lifted the h2c switch (HTTP/2 over TLS needs Go's HTTP/2 server) ...
    assert stdout.startswith("GODEBUG=\n"), stdout
    # ... and ran the static file this script wrote: the routes from the watched directory.
    assert f"ARGS=--configFile={tmp_path}/run/traefik.yml" in stdout
    static = traefik_stand_in.printed_configuration(stdout)
    assert static["providers"]["file"] == {"directory": f"{tmp_path}/run/dynamic",
                                           "watch": True}
    assert (tmp_path / "run" / "dynamic" / "routes.yml").read_text() == \
        (REPO_ROOT / "traefik" / "dynamic.yml").read_text()


def test_the_swarm_entrypoint_adds_the_acme_resolver(tmp_path: Path) -> None:
    status, stdout = start_upstreams_script(tmp_path, ACME_EMAIL="ops@example.org")
    assert status == 0, stdout
    static = traefik_stand_in.printed_configuration(stdout)
    assert static["providers"]["file"]["directory"] == f"{tmp_path}/run/dynamic"
    assert "certificatesResolvers" in static


def test_the_swarm_entrypoint_refuses_half_a_setting_in_one_line(tmp_path: Path) -> None:
    status, stdout = start_upstreams_script(tmp_path, ACME_CA_SERVER="https://ca/dir")
    assert status == 2
    assert stdout.strip().splitlines() == [
        "traefik: ACME_CA_SERVER=https://ca/dir is set but ACME_EMAIL is not: ACME needs a "
        "contact address"]


@pytest.mark.parametrize("name", ["stack.tls.yml"])
def test_the_overlay_names_its_secrets_external(tmp_path: Path, name: str) -> None:
    # Secrets are created by the operator (`docker secret create`), never from files in the repo.
    secrets = yaml.safe_load((SWARM_DIR / name).read_text())["secrets"]
    assert secrets and all(secret == {"external": True} for secret in secrets.values())
