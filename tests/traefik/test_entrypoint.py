"""traefik/entrypoint.sh, the image's start: plain HTTP runs traefik.yml as is; ACME_EMAIL adds
the ACME resolver exactly as scripts/run-local does; half a setting is one line, status 2.
Run with `sh` and a stand-in `traefik` on PATH that prints the configuration it was given
(tests/support/traefik_stand_in.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from run_local.render import render_acme_static
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


def test_acme_adds_the_resolver_as_run_local_does(tmp_path: Path) -> None:
    values = {"ACME_EMAIL": "ops@example.org",
              "ACME_CA_SERVER": "https://acme-staging-v02.api.letsencrypt.org/directory",
              "ACME_STORAGE": "/var/lib/traefik/acme.json"}
    result = start(tmp_path, **values)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("GODEBUG=\n")  # HTTP/2 over TLS needs Go's HTTP/2 server
    run_local = yaml.safe_load((TRAEFIK_DIR / "traefik.yml").read_text() + "\n" +
                               render_acme_static((TRAEFIK_DIR / "acme.yml").read_text(), values))
    assert configuration(result) == run_local
    assert (tmp_path / "traefik.yml").is_file()


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
    ({"ACME_EMAIL": "a@b.c", "LEGO_CA_CERTIFICATES": "/nowhere.pem"},
     "LEGO_CA_CERTIFICATES names /nowhere.pem, which is not readable"),
])
def test_half_a_setting_is_one_line_and_status_2(tmp_path: Path, env: dict[str, str],
                                                 message: str) -> None:
    result = start(tmp_path, **env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
