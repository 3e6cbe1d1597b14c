"""run_local.config: environment overrides, defaults, port conflicts (no server started)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from run_local.config import (
    HTTPS_PORT_DEFAULT,
    LETS_ENCRYPT,
    REPO,
    ConfigError,
    entry_point_port_name,
    pick_ports,
    port_free,
    read_config,
)


def test_defaults(tmp_path: Path) -> None:
    config = read_config({}, tmp_path)
    assert config.port == 8080
    assert config.model_path == REPO / "model.service" / "models" / "cassava"
    assert config.max_upload_bytes == 10 * 1024 * 1024
    assert config.run_dir == REPO / ".run" / "8080"
    assert config.internal_ports == {"MODEL_GRPC_PORT": 0, "MODEL_REST_PORT": 0, "API_PORT": 0,
                                     "UI_PORT": 0, "PING_PORT": 0, "PROMETHEUS_PORT": 0}
    assert config.bootstrap and not config.keep_going
    assert config.read_timeout is None


def test_environment_overrides(tmp_path: Path) -> None:
    config = read_config({
        "PORT": "9000", "MODEL_BASE_PATH": "models", "MODEL_NAME": "leaf",
        "MAX_UPLOAD_BYTES": "5000", "UI_ROOT": "/srv/ui", "RUN_DIR": "run",
        "READY_TIMEOUT": "30", "API_PORT": "9100", "RUN_LOCAL_SKIP_BOOTSTRAP": "1",
        "RUN_LOCAL_KEEP_GOING": "yes", "RUN_LOCAL_READ_TIMEOUT": "3", "NGINX": "/opt/nginx",
    }, tmp_path)
    assert config.port == 9000
    assert config.model_path == tmp_path / "models" / "leaf"  # relative to the current dir
    assert config.labels_path == tmp_path / "models" / "leaf" / "labels.json"
    assert config.max_upload_bytes == 5000
    assert config.ui_root == Path("/srv/ui")
    assert config.run_dir == tmp_path / "run"
    assert config.ready_timeout == 30
    assert config.internal_ports["API_PORT"] == 9100
    assert not config.bootstrap and config.keep_going
    assert config.read_timeout == 3
    assert config.nginx == "/opt/nginx"


@pytest.mark.parametrize("env, message", [
    ({"PORT": "eighty"}, "PORT='eighty' is not a whole number"),
    ({"PORT": "0"}, "PORT=0 is outside 1..65535"),
    ({"API_PORT": "70000"}, "API_PORT=70000 is outside 0..65535"),
    ({"MAX_UPLOAD_BYTES": "0"}, "MAX_UPLOAD_BYTES=0 is outside"),
    ({"RUN_LOCAL_READ_TIMEOUT": "0"}, "RUN_LOCAL_READ_TIMEOUT=0 is outside"),
])
def test_bad_values_are_configuration_errors(tmp_path: Path, env: dict[str, str],
                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_config(env, tmp_path)


def test_every_traefik_entry_point_gets_a_port(tmp_path: Path) -> None:
    config = read_config({"METRICS_PORT": "9300"}, tmp_path, ["web", "ping", "metrics"])
    assert config.internal_ports["PING_PORT"] == 0
    assert config.internal_ports["METRICS_PORT"] == 9300
    assert "WEB_PORT" not in config.internal_ports  # web is PORT
    assert [entry_point_port_name(n) for n in ("web", "ping", "metrics")] == [
        "PORT", "PING_PORT", "METRICS_PORT"]


def fake_free_ports(*ports: int):
    """A free_port() that hands out the given ports in order."""
    it = iter(ports)
    return lambda: next(it)


def test_zero_means_any_free_port_never_one_already_used(tmp_path: Path) -> None:
    config = read_config({"PORT": "9000", "API_PORT": "9001"}, tmp_path)
    # The "free" port finder offers 9000 and 9001 first: both are taken by explicit settings.
    ports = pick_ports(config, is_free=lambda port: True,
                       free_port=fake_free_ports(9000, 9001, 9002, 9003, 9004, 9005, 9006, 9007))
    assert ports["PORT"] == 9000 and ports["API_PORT"] == 9001
    assert len(set(ports.values())) == len(ports) == 7
    assert {ports[n] for n in ("MODEL_GRPC_PORT", "MODEL_REST_PORT", "UI_PORT", "PING_PORT")
            } == {9002, 9003, 9004, 9005}


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    config = read_config({"PORT": "9000"}, tmp_path)
    with pytest.raises(ConfigError, match=r"port 9000 on 127.0.0.1 is already in use \(PORT\)"):
        pick_ports(config, is_free=lambda port: port != 9000)


def test_two_settings_with_one_port_are_refused(tmp_path: Path) -> None:
    config = read_config({"PORT": "9000", "UI_PORT": "9000"}, tmp_path)
    with pytest.raises(ConfigError, match="PORT and UI_PORT are both 9000"):
        pick_ports(config, is_free=lambda port: True)


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_free(port)
    assert port_free(port)


# -- HTTPS (docs/tls.md) -------------------------------------------------------------------------

def test_https_is_off_without_acme_email_or_own_certificate(tmp_path: Path) -> None:
    config = read_config({}, tmp_path)
    assert config.tls is None and config.url(config.ui_host) == \
        "http://ui.service.localhost:8080/"


def test_acme_settings(tmp_path: Path) -> None:
    config = read_config({"ACME_EMAIL": "ops@example.org", "UI_HOST": "UI.Example.org",
                          "API_HOST": "api.example.org", "RUN_DIR": "run"}, tmp_path)
    assert config.tls is not None
    assert config.tls.port == HTTPS_PORT_DEFAULT == 8443
    assert config.tls.acme_ca_server == LETS_ENCRYPT
    assert config.tls.acme_storage == tmp_path / "run" / "acme.json"
    assert config.url(config.ui_host) == "https://ui.example.org:8443/"
    assert config.tls.traefik_env() == {
        "HTTPS_PORT": "8443", "ACME_EMAIL": "ops@example.org", "ACME_CA_SERVER": LETS_ENCRYPT,
        "ACME_STORAGE": str(tmp_path / "run" / "acme.json"), "TLS_CERT_FILE": "",
        "TLS_KEY_FILE": ""}
    ports = pick_ports(config, is_free=lambda port: True,
                       free_port=iter(range(20000, 20100)).__next__)
    assert ports["HTTPS_PORT"] == 8443


def test_own_certificate_settings(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    config = read_config({"TLS_CERT_FILE": "c.pem", "TLS_KEY_FILE": "k.pem",
                          "HTTPS_PORT": "9443"}, tmp_path)
    assert config.tls and config.tls.port == 9443 and not config.tls.acme_email
    assert config.tls.traefik_env()["TLS_CERT_FILE"] == str(tmp_path / "c.pem")


@pytest.mark.parametrize("env, message", [
    ({"ACME_CA_SERVER": "https://ca.example/dir"}, "ACME_CA_SERVER=https://ca.example/dir is "
     "set but ACME_EMAIL is not"),
    ({"ACME_EMAIL": "not-an-address"}, "is not an e-mail address"),
    ({"ACME_EMAIL": 'a@b.c" evil: 1'}, "is not an e-mail address"),
    ({"ACME_EMAIL": "a@b.c", "ACME_CA_SERVER": "http://ca/dir"}, "is not an https:// URL"),
    ({"ACME_EMAIL": "a@b.c", "TLS_CERT_FILE": "c", "TLS_KEY_FILE": "k"}, "both set"),
    ({"TLS_CERT_FILE": "c.pem"}, "go together"),
    ({"TLS_CERT_FILE": "missing.pem", "TLS_KEY_FILE": "k.pem"}, "is not a readable file"),
    ({"HTTPS_PORT": "8443"}, "HTTPS_PORT is set but HTTPS is off"),
    ({"ACME_EMAIL": "a@b.c", "LEGO_CA_CERTIFICATES": "/nowhere/root.pem"},
     "LEGO_CA_CERTIFICATES names /nowhere/root.pem, which is not readable"),
    ({"ACME_EMAIL": "a@b.c", "HTTPS_PORT": "8080"}, "PORT and HTTPS_PORT are both 8080"),
    ({"UI_HOST": "ui host"}, "is not a host name"),
])
def test_half_an_https_setting_is_a_clear_error(tmp_path: Path, env: dict[str, str],
                                                message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_config(env, tmp_path)
