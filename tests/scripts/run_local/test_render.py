"""run_local.render: the nginx and Traefik files run-local writes, from the shared ones."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
import yaml

from run_local.config import REPO, ConfigError
from run_local.render import (
    entry_points,
    render_nginx_conf,
    render_server_block,
    render_traefik_static,
    yaml_key_paths,
)

TRAEFIK_YML = (REPO / "traefik" / "traefik.yml").read_text()
SERVER_BLOCK = (REPO / "ui.service" / "nginx" / "default.conf").read_text()
DYNAMIC = REPO / "traefik" / "dynamic.yml"


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    """(old, new) pairs of lines that differ; added lines are paired with ''."""
    pairs = []
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines())
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old, new = before.splitlines()[i1:i2], after.splitlines()[j1:j2]
            pairs += list(zip(old + [""] * (len(new) - len(old)),
                              new + [""] * (len(old) - len(new)), strict=True))
    return pairs


ADDRESSES = {"web": "127.0.0.1:9000", "websecure": "127.0.0.1:9443",
             "ping": "127.0.0.1:9001", "metrics": "127.0.0.1:9002"}


def rendered(read_timeout: int | None = None, https: bool = True) -> str:
    addresses = ADDRESSES if https else {k: v for k, v in ADDRESSES.items() if k != "websecure"}
    return render_traefik_static(TRAEFIK_YML, addresses, DYNAMIC, read_timeout,
                                 without=() if https else ("websecure",))


def test_run_local_and_compose_have_the_same_traefik_settings() -> None:
    """The rendered copy differs from traefik/traefik.yml in addresses and the routing file's
    path only (plus a generated-file header): every other setting is the file's own line."""
    changes = [(old.strip(), new.strip()) for old, new in changed_lines(TRAEFIK_YML, rendered())
               if not new.startswith("# Generated") and not new.startswith("# entry point")]
    assert changes == [
        ('address: ":8080"', 'address: "127.0.0.1:9000"'),
        ('address: ":8443"', 'address: "127.0.0.1:9443"'),
        ('address: "127.0.0.1:8082"', 'address: "127.0.0.1:9001"'),
        ('address: ":9100"', 'address: "127.0.0.1:9002"'),
        ("filename: /etc/traefik/dynamic.yml", f'filename: "{DYNAMIC}"'),
    ]


def test_the_limits_are_set_in_the_shared_file() -> None:
    """The settings issue 14 relies on (and the old run-local-only path rules) are in the one
    file both deployments read."""
    settings = {path: raw.strip() for _, path, raw in yaml_key_paths(TRAEFIK_YML)}
    web = ("entryPoints", "web")
    assert settings[(*web, "transport", "respondingTimeouts", "readTimeout")] == "50s"
    assert settings[(*web, "transport", "respondingTimeouts", "writeTimeout")] == "120s"
    assert settings[(*web, "transport", "respondingTimeouts", "idleTimeout")] == "30s"
    assert settings[(*web, "http", "maxHeaderBytes")] == "8192"
    encoded = {path[-1]: value for path, value in settings.items()
               if path[:4] == (*web, "http", "encodedCharacters") and len(path) == 5}
    assert set(encoded) == {f"allowEncoded{kind}" for kind in (
        "Slash", "BackSlash", "NullCharacter", "Semicolon", "Percent", "QuestionMark", "Hash")}
    assert set(encoded.values()) == {"false"}
    assert ("api",) not in settings  # no dashboard, no API


def test_a_test_only_read_timeout_replaces_that_one_value() -> None:
    changes = [(old.strip(), new.strip()) for old, new in
               changed_lines(rendered(), rendered(read_timeout=3))]
    assert changes == [("readTimeout: 50s", 'readTimeout: "3s"')]


def test_plain_http_drops_exactly_the_websecure_entry_point() -> None:
    """Without TLS, run-local's copy has no `websecure` (no extra listener): the lines removed
    are that block and its comment, nothing else."""
    plain, https = rendered(https=False), rendered()
    assert entry_points(plain) == ["web", "ping", "metrics"]
    removed = [old.strip() for old, new in changed_lines(https, plain)]
    assert removed[0].startswith("# HTTPS") and "websecure:" in removed
    assert removed[-1] == "http: *public-http"
    assert all(new == "" for _, new in changed_lines(https, plain))
    assert yaml.safe_load(plain)["entryPoints"]["web"]["transport"]["respondingTimeouts"]


def test_websecure_has_the_limits_of_web() -> None:
    """One set of timeouts and header rules for both public entry points (YAML anchors)."""
    static = yaml.safe_load(rendered(read_timeout=3))
    web, websecure = static["entryPoints"]["web"], static["entryPoints"]["websecure"]
    for key in ("transport", "forwardedHeaders", "http"):
        assert websecure[key] == web[key]
    assert websecure["transport"]["respondingTimeouts"]["readTimeout"] == "3s"


def test_every_entry_point_needs_an_address() -> None:
    assert entry_points(TRAEFIK_YML) == ["web", "websecure", "ping", "metrics"]
    with pytest.raises(ConfigError, match="declares entry points"):
        render_traefik_static(TRAEFIK_YML, {"web": "127.0.0.1:1"}, DYNAMIC)
    with pytest.raises(ConfigError, match="declares entry points"):
        render_traefik_static(TRAEFIK_YML, {**ADDRESSES, "extra": "127.0.0.1:4"}, DYNAMIC)


def test_a_file_without_a_substituted_key_is_an_error() -> None:
    without_provider = TRAEFIK_YML.replace("filename:", "directory:")
    with pytest.raises(ConfigError, match=r"no providers\.file\.filename"):
        render_traefik_static(without_provider, ADDRESSES, DYNAMIC)


def test_key_paths_follow_indentation() -> None:
    text = "a:\n  b:\n    c: 1  # note\n  # comment\n  d: [x]\ne: 2\n"
    assert [(path, raw.strip()) for _, path, raw in yaml_key_paths(text)] == [
        (("a",), ""), (("a", "b"), ""), (("a", "b", "c"), "1  # note"), (("a", "d"), "[x]"),
        (("e",), "2")]


def test_the_nginx_server_block_keeps_everything_but_listen_and_root() -> None:
    block = render_server_block(SERVER_BLOCK, 9100, Path("/srv/ui"))
    assert "listen 127.0.0.1:9100 default_server;" in block
    assert 'root "/srv/ui";' in block
    assert not re.search(r"^\s*(listen 8080|root /usr/share/nginx/html)", block, re.MULTILINE)
    changes = changed_lines(SERVER_BLOCK, block)
    assert len(changes) == 2
    assert all(re.match(r"\s*(listen|root) ", old) for old, _ in changes)


def test_a_server_block_without_listen_or_root_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no listen directive"):
        render_server_block("server { root /usr/share/nginx/html; }", 1, Path("/x"))
    with pytest.raises(ConfigError, match="expected one"):
        render_server_block("server {\n listen 80;\n}", 1, Path("/x"))


def test_the_nginx_conf_runs_in_the_foreground_from_run_dir() -> None:
    conf = render_nginx_conf(Path("/run/x"), Path("/run/x/ui.conf"), "me staff")
    assert "daemon off;" in conf
    assert 'pid "/run/x/nginx.pid";' in conf
    assert "user me staff;" in conf
    assert 'include "/run/x/ui.conf";' in conf
    assert 'client_body_temp_path "/run/x/nginx-tmp/client_body";' in conf
    assert "user " not in render_nginx_conf(Path("/r"), Path("/r/ui.conf"), None)
