"""traefik/entrypoint.sh, Traefik's start in the image and in run-local: plain HTTP runs
traefik.yml as is; ACME_EMAIL adds the ACME resolver, moves the routes to a watched directory and
starts acme-retry.sh beside Traefik; half a setting is one line, status 2.
Run with `sh` and a stand-in `traefik` on PATH that prints the configuration it was given
(tests/support/traefik_stand_in.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import traefik_stand_in
from tests.support.paths import REPO_ROOT

TRAEFIK_DIR = REPO_ROOT / "traefik"


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = traefik_stand_in.install(tmp_path / "bin")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ACME_EMAIL", "ACME_CA_SERVER", "TLS_CERT_FILE", "LEGO_CA_CERTIFICATES")}
    return subprocess.run(["sh", str(TRAEFIK_DIR / "entrypoint.sh")], capture_output=True,
                          text=True, timeout=30, env={
                              **clean, "PATH": f"{bin_dir}:{clean['PATH']}",
                              "TRAEFIK_CONFIG_DIR": str(TRAEFIK_DIR), "TMPDIR": str(tmp_path),
                              "GODEBUG": "http2server=0", **env})


def configuration(result: subprocess.CompletedProcess[str]) -> dict:
    return traefik_stand_in.printed_configuration(result.stdout)


def test_plain_http_runs_the_static_file_as_is(tmp_path: Path) -> None:
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("GODEBUG=http2server=0\n")
    assert f"ARGS=--configFile={TRAEFIK_DIR}/traefik.yml" in result.stdout
    assert configuration(result) == yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text())


def issued_store(tmp_path: Path) -> Path:
    """An acme.json that has both default names: acme-retry.sh ends at once."""
    store = tmp_path / "acme.json"
    store.write_text(json.dumps({"acme": {"Certificates": [
        {"domain": {"main": name}} for name in ("ui.service.localhost", "api.service.localhost")
    ]}}, indent=2))
    return store


def config_dir_with(tmp_path: Path, old: str, new: str) -> Path:
    """traefik.yml with one text replaced (as run-local writes it into RUN_DIR)."""
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    static = (TRAEFIK_DIR / "traefik.yml").read_text()
    assert old in static
    (config_dir / "traefik.yml").write_text(static.replace(old, new))
    return config_dir


def test_acme_adds_the_resolver_with_quoted_values(tmp_path: Path) -> None:
    values = {"ACME_EMAIL": "ops@example.org",
              "ACME_CA_SERVER": "https://acme-staging-v02.api.letsencrypt.org/directory",
              "ACME_STORAGE": str(issued_store(tmp_path))}
    # The routing file as the image names it, here the checkout's (run-local quotes the path).
    config_dir = config_dir_with(tmp_path, "filename: /etc/traefik/dynamic.yml",
                                 f'filename: "{TRAEFIK_DIR}/dynamic.yml"')
    result = start(tmp_path, TRAEFIK_CONFIG_DIR=str(config_dir), **values)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("GODEBUG=\n")  # HTTP/2 over TLS needs Go's HTTP/2 server
    assert f"ARGS=--configFile={tmp_path}/traefik.yml" in result.stdout
    static = configuration(result)
    assert static["certificatesResolvers"]["acme"]["acme"] == {
        "email": "ops@example.org", "caServer": values["ACME_CA_SERVER"],
        "storage": values["ACME_STORAGE"], "keyType": "EC256",
        "httpChallenge": {"entryPoint": "web"}}
    # Every other setting is traefik.yml's, but for the routes: a watched directory (for
    # acme-retry.sh's file) that holds a copy of dynamic.yml.
    plain = yaml.safe_load((config_dir / "traefik.yml").read_text())
    routes = tmp_path / "traefik-dynamic"
    assert static.pop("providers") == {"file": {"directory": str(routes), "watch": True}}
    del static["certificatesResolvers"], plain["providers"]
    assert static == plain
    assert (routes / "routes.yml").read_text() == (TRAEFIK_DIR / "dynamic.yml").read_text()


def test_acme_keeps_a_watched_directory_it_is_given(tmp_path: Path) -> None:
    """The Swarm stack's start script (traefik-upstreams.sh) names the directory it writes to."""
    result = start(tmp_path, ACME_EMAIL="ops@example.org", TRAEFIK_ROUTES_DIR=f"{tmp_path}/routes",
                   ACME_STORAGE=str(issued_store(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert configuration(result)["providers"]["file"] == {"directory": f"{tmp_path}/routes",
                                                           "watch": True}
    assert not (tmp_path / "traefik-dynamic").exists()


def test_a_static_file_without_a_routing_file_to_turn_is_one_line(tmp_path: Path) -> None:
    config_dir = config_dir_with(tmp_path, "watch: false", "watch: no")
    result = start(tmp_path, TRAEFIK_CONFIG_DIR=str(config_dir), TRAEFIK_ROUTES_DIR=str(tmp_path))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "has no 'filename:' + 'watch: false' file provider" in result.stderr


def test_own_certificates_lift_the_h2c_switch_only(tmp_path: Path) -> None:
    result = start(tmp_path, TLS_CERT_FILE="/run/secrets/site.crt")
    assert result.stdout.startswith("GODEBUG=\n")
    assert "certificatesResolvers" not in configuration(result)


@pytest.mark.parametrize("env, message", [
    ({"ACME_CA_SERVER": "https://ca/dir"}, "ACME_CA_SERVER=https://ca/dir is set but ACME_EMAIL "
     "is not"),
    ({"ACME_EMAIL": "ops@example.org|evil"}, "is not an e-mail address"),
    ({"ACME_EMAIL": "no-at-sign"}, "is not an e-mail address"),
    ({"ACME_EMAIL": "a@b.c", "ACME_CA_SERVER": "http://ca/dir"}, "is not an https:// URL"),
    ({"ACME_EMAIL": "a@b.c", "ACME_CA_SERVER": "https://ca/dir&x"}, "character not allowed"),
    ({"ACME_EMAIL": "a@b.c", "ACME_RETRY_SECONDS": "1.5"}, "ACME_RETRY_SECONDS=1.5 is not a "
     "whole number of seconds > 0"),
    ({"ACME_EMAIL": "a@b.c", "ACME_RETRY_SECONDS": "00"}, "ACME_RETRY_SECONDS=00 is not"),
    ({"ACME_EMAIL": "a@b.c", "LEGO_CA_CERTIFICATES": "/nowhere.pem"},
     "LEGO_CA_CERTIFICATES names /nowhere.pem, which is not readable"),
])
def test_half_a_setting_is_one_line_and_status_2(tmp_path: Path, env: dict[str, str],
                                                 message: str) -> None:
    result = start(tmp_path, **env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
