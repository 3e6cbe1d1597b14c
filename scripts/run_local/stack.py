"""The four services of the stack, their readiness checks, and the files they read from
RUN_DIR (rendered from the shared ones by run_local.render)."""

from __future__ import annotations

import grp
import json
import os
import pwd

from run_local import monitoring
from run_local.config import (
    HTTPS_ENTRY_POINT,
    REPO,
    VENV_BIN,
    Config,
    entry_point_port_name,
)
from run_local.render import (
    NGINX_TEMP_KINDS,
    entry_points,
    render_nginx_conf,
    render_server_block,
    render_traefik_static,
)
from run_local.supervise import Service, http_get

NGINX_SERVER_BLOCK = REPO / "ui.service" / "nginx" / "default.conf"
TRAEFIK_DIR = REPO / "traefik"
TRAEFIK_STATIC = TRAEFIK_DIR / "traefik.yml"
# Traefik starts through the image's own start script: with ACME_EMAIL it writes a copy of
# RUN_DIR/traefik.yml with the ACME resolver into TRAEFIK_WORK_DIR and keeps asking a CA that is
# down (docs/tls.md).
TRAEFIK_ENTRYPOINT = TRAEFIK_DIR / "entrypoint.sh"
TRAEFIK_WORK_DIR = "traefik"  # in RUN_DIR: the script's TMPDIR
# Go runtime settings for Traefik, the same as traefik/Dockerfile's ENV GODEBUG (a unit test
# compares them): http2server=0 turns off Go's HTTP/2 server, so the public entry point speaks
# no cleartext HTTP/2 (h2c), which Traefik v3 offers no option to refuse. Not with HTTPS on: it
# turns off HTTP/2 over TLS as well (ALPN says h2, then the connection breaks), and `web` then
# routes nothing but the redirect to HTTPS (docs/tls.md).
TRAEFIK_GODEBUG = "http2server=0"


def traefik_entry_points(config: Config | None = None) -> list[str]:
    """The static file's entry points; `websecure` only when the configuration has TLS on."""
    names = entry_points(TRAEFIK_STATIC.read_text())
    if config is not None and not config.tls:
        names.remove(HTTPS_ENTRY_POINT)
    return names


def traefik_addresses(ports: dict[str, int], names: list[str]) -> dict[str, str]:
    """Every entry point on 127.0.0.1 at its run-local port (web = PORT)."""
    return {name: f"127.0.0.1:{ports[entry_point_port_name(name)]}" for name in names}


def rollout_flags(config: Config) -> list[str]:
    """With scripts/model-rollout's models.config in the model repository, the model server
    serves it (TF Serving's flags), re-read every second (docs/model-rollout.md)."""
    model_config = config.model_base_path / "models.config"
    if not model_config.is_file():
        return []
    return [f"--model_config_file={model_config}", "--model_config_file_poll_wait_seconds=1",
            "--allow_version_labels_for_unavailable_models=true"]


def services(config: Config, ports: dict[str, int], nginx: str) -> list[Service]:
    c, p = config, ports
    python = str(VENV_BIN / "python")
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_FORMAT": c.log_format}
    default_port = 443 if c.tls else 80
    origins = c.url(c.ui_host, "").rstrip("/") + (
        f",{c.scheme}://{c.ui_host}" if c.public_port == default_port else "")

    def model_ready() -> str | None:
        status, _, body = http_get(p["MODEL_REST_PORT"], f"/v1/models/{c.model_name}")
        if status != 200:
            return None
        versions = [v.get("version") for v in json.loads(body).get("model_version_status", [])
                    if v.get("state") == "AVAILABLE"]
        return f"AVAILABLE (version {', '.join(map(str, versions))})" if versions else None

    def api_ready() -> str | None:
        return "GET /readyz 200" if http_get(p["API_PORT"], "/readyz")[0] == 200 else None

    def nginx_ready() -> str | None:
        status, _, _ = http_get(p["UI_PORT"], "/")
        return f"serving {c.ui_root} (GET / {status})" if status < 500 else None

    def traefik_ready() -> str | None:
        if http_get(p["PING_PORT"], "/ping")[0] != 200:
            return None
        # Routed to nginx (its headers), not Traefik's own 404: the dynamic file is loaded.
        # With TLS on, the certificate is not checked here: it may still be Traefik's default
        # one while the ACME CA is asked (or down); the routes serve meanwhile.
        _, headers, _ = http_get(c.public_port, "/", host=c.ui_host, tls=bool(c.tls))
        return "routing" if headers.get("x-frame-options") == "DENY" else None

    traefik_ports = {name: p[entry_point_port_name(name)] for name in traefik_entry_points(c)}
    https_env = c.tls.traefik_env() if c.tls else {}
    return [
        Service(
            "model-server",
            [str(REPO / "scripts" / "model-server"), f"--port={p['MODEL_GRPC_PORT']}",
             f"--rest_api_port={p['MODEL_REST_PORT']}", f"--model_name={c.model_name}",
             f"--model_base_path={c.model_path}", "--bind_address=127.0.0.1",
             *monitoring.model_server_flags(c.run_dir), *rollout_flags(c)],
            # In the model repository: models.config's relative base_path is relative to it.
            base_env, c.model_base_path if rollout_flags(c) else REPO, model_ready,
            "the model to load",
            {"grpc": p["MODEL_GRPC_PORT"], "rest": p["MODEL_REST_PORT"]}),
        Service(
            "api",
            # The image's command line (app/server.py), listening on loopback only.
            [python, "-m", "app"],
            {**base_env, "LISTEN_HOST": "127.0.0.1", "LISTEN_PORT": str(p["API_PORT"]),
             "FORWARDED_ALLOW_IPS": "127.0.0.1",
             "MODEL_SERVER_ADDRESS": f"127.0.0.1:{p['MODEL_GRPC_PORT']}",
             "MODEL_NAME": c.model_name, "LABELS_PATH": str(c.labels_path),
             "ROLLOUT_FILE": str(c.model_base_path / "rollout.json"),
             "MAX_UPLOAD_BYTES": str(c.max_upload_bytes)},
            REPO / "api.service", api_ready, "GET /readyz = 200",
            {"http": p["API_PORT"]}, after="model-server"),
        Service(
            "nginx",
            [nginx, "-e", "stderr", "-p", str(c.run_dir), "-c", str(c.run_dir / "nginx.conf")],
            base_env, c.run_dir, nginx_ready, "nginx to answer", {"http": p["UI_PORT"]}),
        Service(
            "traefik",
            ["sh", str(TRAEFIK_ENTRYPOINT)],
            {**base_env, "TRAEFIK_BIN": c.traefik, "TRAEFIK_CONFIG_DIR": str(c.run_dir),
             "TMPDIR": str(c.run_dir / TRAEFIK_WORK_DIR), "API_UPSTREAM": f"http://127.0.0.1:{p['API_PORT']}",
             "UI_UPSTREAM": f"http://127.0.0.1:{p['UI_PORT']}",
             "UI_HOST": c.ui_host, "API_HOST": c.api_host, "UI_ORIGINS": origins,
             "MAX_UPLOAD_BYTES": str(c.max_upload_bytes),
             **({"GODEBUG": TRAEFIK_GODEBUG} if not c.tls else {}),
             # Empty values: an ACME_EMAIL or TLS_CERT_FILE of the caller's environment
             # never turns HTTPS on behind the configuration's back.
             **{name: "" for name in ("ACME_EMAIL", "ACME_CA_SERVER", "TLS_CERT_FILE",
                                      "TLS_KEY_FILE", "HTTPS_PORT")},
             **https_env},
            c.run_dir, traefik_ready, "ping and the UI route",
            {{"web": "http", HTTPS_ENTRY_POINT: "https"}.get(name, name): port
             for name, port in traefik_ports.items()}),
    ] + ([monitoring.prometheus_service(c.prometheus, c.run_dir, p["PROMETHEUS_PORT"], base_env)]
         if c.monitoring else [])


def write_runtime_files(config: Config, ports: dict[str, int]) -> None:
    """RUN_DIR: nginx.conf + ui.conf, traefik.yml, nginx temp dirs, the plugins-local link."""
    c = config
    c.run_dir.mkdir(parents=True, exist_ok=True)
    for kind in NGINX_TEMP_KINDS:
        (c.run_dir / "nginx-tmp" / kind).mkdir(parents=True, exist_ok=True)
    block = c.run_dir / "ui.conf"
    block.write_text(render_server_block(NGINX_SERVER_BLOCK.read_text(), ports["UI_PORT"],
                                         c.ui_root))
    user = None
    if os.geteuid() == 0:  # workers run as the invoking user, not nginx's default nobody
        user = f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"
    (c.run_dir / "nginx.conf").write_text(render_nginx_conf(c.run_dir, block, user))
    if c.tls and c.tls.acme_storage is not None:
        c.tls.acme_storage.parent.mkdir(parents=True, exist_ok=True)
    (c.run_dir / "traefik.yml").write_text(render_traefik_static(
        TRAEFIK_STATIC.read_text(), traefik_addresses(ports, traefik_entry_points(c)),
        TRAEFIK_DIR / "dynamic.yml", c.read_timeout,
        without=() if c.tls else (HTTPS_ENTRY_POINT,)))
    (c.run_dir / TRAEFIK_WORK_DIR).mkdir(exist_ok=True)
    monitoring.write_files(c.run_dir, ports, c.monitoring)
    # Traefik loads local plugins from ./plugins-local: its working directory is run_dir.
    plugins = c.run_dir / "plugins-local"
    if plugins.is_symlink() or plugins.exists():
        plugins.unlink()
    plugins.symlink_to(TRAEFIK_DIR / "plugins-local")


def state(config: Config) -> dict[str, object]:
    """What services.json says about the stack as a whole."""
    return {
        "port": config.port,
        **({"https_port": config.tls.port} if config.tls else {}),
        "urls": {"ui": config.url(config.ui_host), "api": config.url(config.api_host)},
        "model": {"name": config.model_name, "path": str(config.model_path)},
    }


def banner(config: Config, elapsed: float) -> list[str]:
    return [f"ready in {elapsed:.1f}s",
            f"  open   {config.url(config.ui_host)}",
            f"  API    {config.url(config.api_host, '/predict/image')} "
            "(POST multipart field image_to_predict)",
            *([f"  plain HTTP on port {config.port} redirects to HTTPS"] if config.tls else []),
            "  Ctrl-C stops everything"]
