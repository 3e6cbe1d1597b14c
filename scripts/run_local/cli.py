"""The command: check the configuration (exit 2 with a message), then run the stack."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from run_local import stack
from run_local.config import (
    REPO,
    TRUE,
    VENV_BIN,
    ConfigError,
    check_model,
    find_binary,
    pick_ports,
    read_config,
)
from run_local.supervise import Supervisor

USAGE = """Run the whole stack without Docker: model server, API, nginx and Traefik on
127.0.0.1:$PORT.

Standard library only (it runs before .venv exists). Environment (docs/run-local.md has the table):
PORT, MODEL_BASE_PATH, MODEL_NAME, MAX_UPLOAD_BYTES, UI_ROOT, RUN_DIR, READY_TIMEOUT,
MODEL_GRPC_PORT, MODEL_REST_PORT, API_PORT, UI_PORT, PING_PORT (0 = any free port),
NGINX, TRAEFIK (binaries), RUN_LOCAL_SKIP_BOOTSTRAP=1, RUN_LOCAL_KEEP_GOING=1,
RUN_LOCAL_READ_TIMEOUT (tests only), the edge limits (RATE_LIMIT_*, INFLIGHT_PER_CLIENT),
LOG_FORMAT=text|json (default text), MONITORING=1 or the argument --monitoring (Debian's
Prometheus beside the stack; PROMETHEUS_PORT, PROMETHEUS binary).
HTTPS (docs/tls.md): UI_HOST and API_HOST (the public names), then ACME_EMAIL (certificates
from ACME_CA_SERVER, default Let's Encrypt; LEGO_CA_CERTIFICATES for a private CA's root;
ACME_STORAGE, default RUN_DIR/acme.json; ACME_RETRY_SECONDS, default 60: while a name has no
certificate, ask the CA again after it, doubling) or --tls-cert FILE --tls-key FILE (TLS_CERT_FILE,
TLS_KEY_FILE: own certificate). HTTPS on HTTPS_PORT (default 8443); PORT then redirects.
Exit status: 0 after a requested stop, 1 when a service fails, 2 for a configuration problem.
"""


# The command's arguments: each stands for an environment variable.
FLAGS = {"--monitoring": ("MONITORING", False), "--tls-cert": ("TLS_CERT_FILE", True),
         "--tls-key": ("TLS_KEY_FILE", True)}


def arguments_as_env(arguments: list[str]) -> dict[str, str]:
    """--monitoring, --tls-cert FILE, --tls-key FILE (also --name=value) as the variables
    they stand for; anything else is an error."""
    env: dict[str, str] = {}
    rest = list(arguments)
    while rest:
        flag, _, inline = rest.pop(0).partition("=")
        if flag not in FLAGS:
            raise ConfigError(f"unknown argument {flag!r}; the arguments are "
                              f"{', '.join(FLAGS)}, the rest is configured with environment "
                              "variables")
        name, takes_value = FLAGS[flag]
        if not takes_value:
            env[name] = "1"
            continue
        if not inline:
            if not rest:
                raise ConfigError(f"{flag} needs a file")
            inline = rest.pop(0)
        env[name] = inline
    return env


def bootstrap() -> None:
    """Install what is missing (.venv, nginx); bootstrap explains and fails without rights."""
    result = subprocess.run([str(REPO / "scripts" / "bootstrap"), "runtime"], check=False)
    if result.returncode != 0:
        raise ConfigError(f"scripts/bootstrap runtime failed (status {result.returncode}); "
                          "see its message above")


def main(argv: list[str]) -> int:
    if argv[1:2] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        env = {**os.environ, **arguments_as_env(argv[1:])}
    except ConfigError as error:
        print(f"run-local: {error} (--help)", file=sys.stderr)
        return 2
    if env.get("MONITORING", "") in TRUE:
        os.environ["MONITORING"] = "1"  # also tells scripts/bootstrap to install Prometheus
    try:
        config = read_config(env, Path.cwd(), stack.traefik_entry_points())
        check_model(config)
        ports = pick_ports(config)
        if config.bootstrap:
            bootstrap()
        if not os.access(VENV_BIN / "python", os.X_OK):
            raise ConfigError(f"{VENV_BIN / 'python'} is missing: run scripts/bootstrap")
        nginx = find_binary(config.nginx, "nginx", ("/usr/sbin", "/usr/local/sbin"))
        find_binary(config.traefik, "traefik")
        if config.monitoring:
            config = replace(config, prometheus=find_binary(config.prometheus, "prometheus"))
        if not Path("/etc/nginx/mime.types").is_file():
            raise ConfigError("/etc/nginx/mime.types is missing: reinstall nginx")
        stack.write_runtime_files(config, ports)
    except ConfigError as error:
        print(f"run-local: {error}", file=sys.stderr)
        return 2
    supervisor = Supervisor(
        stack.services(config, ports, nginx), config.run_dir / "services.json",
        config.ready_timeout, config.keep_going, state=lambda: stack.state(config),
        banner=lambda elapsed: stack.banner(config, elapsed))
    supervisor.say("run-local", f"model {config.model_name} from {config.model_path}")
    supervisor.say("run-local", f"runtime files in {config.run_dir}")
    return supervisor.run()
