"""Settings from the environment, the model check, ports and binaries (pure, apart from probing
whether a port is free and where a binary is)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
UI_HOST = "ui.service.localhost"
API_HOST = "api.service.localhost"
# Internal ports (0 = any free one). Traefik entry points other than web (PORT) and ping
# (PING_PORT) get <NAME>_PORT, e.g. a `metrics` entry point reads METRICS_PORT.
INTERNAL_PORTS = ("MODEL_GRPC_PORT", "MODEL_REST_PORT", "API_PORT", "UI_PORT", "PING_PORT",
                  "PROMETHEUS_PORT")
TRUE = ("1", "true", "yes")


class ConfigError(Exception):
    """Something the operator must fix before the stack can start (exit status 2)."""


@dataclass(frozen=True)
class Config:
    port: int
    model_base_path: Path
    model_name: str
    max_upload_bytes: int
    ui_root: Path
    run_dir: Path
    ready_timeout: float
    internal_ports: dict[str, int]  # 0 = pick a free one
    nginx: str
    traefik: str
    bootstrap: bool
    keep_going: bool
    read_timeout: int | None = None  # tests only: replaces Traefik's readTimeout (seconds)
    log_format: str = "text"  # LOG_FORMAT of the API and the model server
    monitoring: bool = False  # MONITORING=1 / --monitoring: Prometheus beside the stack
    prometheus: str = ""  # its binary (PROMETHEUS, else on PATH)

    @property
    def model_path(self) -> Path:
        return self.model_base_path / self.model_name

    @property
    def labels_path(self) -> Path:
        return self.model_path / "labels.json"


def entry_point_port_name(entry_point: str) -> str:
    """The environment variable holding a Traefik entry point's port on run-local."""
    return {"web": "PORT", "ping": "PING_PORT"}.get(entry_point, f"{entry_point.upper()}_PORT")


def _int(env: Mapping[str, str], name: str, default: int, low: int = 0,
         high: int = 65535) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def read_config(env: Mapping[str, str], cwd: Path,
                entry_points: Iterable[str] = ("web", "ping")) -> Config:
    """Settings from the environment; relative paths are relative to the current directory.
    entry_points: the Traefik entry points of traefik/traefik.yml (each needs a port)."""
    port = _int(env, "PORT", 8080, 1)
    names = dict.fromkeys(INTERNAL_PORTS)
    names.update((entry_point_port_name(e), None) for e in entry_points if e != "web")
    base = cwd / env.get("MODEL_BASE_PATH", str(REPO / "model.service" / "models"))
    read_timeout = env.get("RUN_LOCAL_READ_TIMEOUT", "").strip()
    return Config(
        port=port,
        model_base_path=base.resolve(),
        model_name=env.get("MODEL_NAME", "cassava"),
        max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1, 2**40),
        ui_root=(cwd / env.get("UI_ROOT", str(REPO / "ui.service" / "html"))).resolve(),
        run_dir=(cwd / env.get("RUN_DIR", str(REPO / ".run" / str(port)))).resolve(),
        ready_timeout=float(_int(env, "READY_TIMEOUT", 300, 1, 86400)),
        internal_ports={name: _int(env, name, 0) for name in names},
        nginx=env.get("NGINX", ""),
        traefik=env.get("TRAEFIK", str(VENV_BIN / "traefik")),
        bootstrap=env.get("RUN_LOCAL_SKIP_BOOTSTRAP", "") not in TRUE,
        keep_going=env.get("RUN_LOCAL_KEEP_GOING", "") in TRUE,
        read_timeout=(_int(env, "RUN_LOCAL_READ_TIMEOUT", 0, 1, 86400)
                      if read_timeout else None),
        log_format=_log_format(env),
        monitoring=env.get("MONITORING", "") in TRUE,
        prometheus=env.get("PROMETHEUS", ""),
    )


def _log_format(env: Mapping[str, str]) -> str:
    value = env.get("LOG_FORMAT", "").strip() or "text"
    if value not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={value!r}: use text or json")
    return value


def check_model(config: Config) -> None:
    """The model repository must exist with at least one numeric version and a labels file."""
    where = f"(MODEL_BASE_PATH={config.model_base_path}, MODEL_NAME={config.model_name})"
    if not config.model_path.is_dir():
        raise ConfigError(f"model path {config.model_path} does not exist {where}")
    if not any(p.is_dir() and p.name.isdigit() for p in config.model_path.iterdir()):
        raise ConfigError(f"model path {config.model_path} holds no version directory "
                          f"(e.g. 1/saved_model.pb) {where}")
    if not config.labels_path.is_file():
        raise ConfigError(f"labels file {config.labels_path} does not exist {where}")
    if not config.ui_root.is_dir():
        raise ConfigError(f"UI directory {config.ui_root} does not exist (UI_ROOT)")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as the servers use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pick_ports(config: Config, is_free=port_free, free_port=any_free_port) -> dict[str, int]:
    """The public port and the internal ones: taken explicit ports are errors, 0 = any free,
    and no two services share one."""
    ports: dict[str, int] = {"PORT": config.port, **config.internal_ports}
    explicit: dict[int, str] = {}
    for name, port in ports.items():
        if not port:
            continue
        if port in explicit:
            raise ConfigError(f"{explicit[port]} and {name} are both {port}: "
                              "two services would share a port")
        explicit[port] = name
        if not is_free(port):
            raise ConfigError(f"port {port} on 127.0.0.1 is already in use ({name}); "
                              f"stop what listens there or choose another {name}")
    used = set(explicit)
    for name, port in ports.items():
        if port:
            continue
        candidate = free_port()
        while candidate in used:
            candidate = free_port()
        ports[name] = candidate
        used.add(candidate)
    return ports


def find_binary(explicit: str, name: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """An executable: explicit path, on PATH, or in extra_dirs (users' PATH lacks /usr/sbin)."""
    if explicit:
        found = shutil.which(explicit)
        if found:
            return found
        raise ConfigError(f"{name} not found at {explicit}")
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in extra_dirs if os.access(Path(d) / name, os.X_OK)), None)
    if not found:
        raise ConfigError(f"{name} is not installed (scripts/bootstrap installs it as root)")
    return found
