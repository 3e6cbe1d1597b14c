"""Settings from the environment, the model check, ports and binaries (pure, apart from probing
whether a port is free and where a binary is)."""

from __future__ import annotations

import os
import re
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
# HTTPS (docs/tls.md): the entry point that serves it, its default port, the default ACME CA.
HTTPS_ENTRY_POINT = "websecure"
HTTPS_PORT_DEFAULT = 8443
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class ConfigError(Exception):
    """Something the operator must fix before the stack can start (exit status 2)."""


@dataclass(frozen=True)
class TLSConfig:
    """HTTPS: certificates from an ACME CA (acme_email set) or own files (cert_file, key_file)."""
    port: int  # HTTPS_PORT, the `websecure` entry point's
    acme_email: str = ""
    acme_ca_server: str = LETS_ENCRYPT
    acme_storage: Path | None = None  # ACME_STORAGE, default RUN_DIR/acme.json
    cert_file: Path | None = None
    key_file: Path | None = None

    def traefik_env(self) -> dict[str, str]:
        """What traefik/dynamic.yml reads to serve HTTPS (the same names in compose)."""
        return {"HTTPS_PORT": str(self.port), "ACME_EMAIL": self.acme_email,
                "ACME_CA_SERVER": self.acme_ca_server if self.acme_email else "",
                "ACME_STORAGE": str(self.acme_storage or ""),
                "TLS_CERT_FILE": str(self.cert_file or ""),
                "TLS_KEY_FILE": str(self.key_file or "")}


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
    ui_host: str = UI_HOST
    api_host: str = API_HOST
    tls: TLSConfig | None = None  # HTTPS on (ACME_EMAIL, or own certificate), else plain HTTP

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def public_port(self) -> int:
        """The port browsers use: HTTPS_PORT with TLS on, else PORT."""
        return self.tls.port if self.tls else self.port

    def url(self, host: str, path: str = "/") -> str:
        return f"{self.scheme}://{host}:{self.public_port}{path}"

    @property
    def model_path(self) -> Path:
        return self.model_base_path / self.model_name

    @property
    def labels_path(self) -> Path:
        return self.model_path / "labels.json"


def entry_point_port_name(entry_point: str) -> str:
    """The environment variable holding a Traefik entry point's port on run-local."""
    return {"web": "PORT", "ping": "PING_PORT", HTTPS_ENTRY_POINT: "HTTPS_PORT"}.get(
        entry_point, f"{entry_point.upper()}_PORT")


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
    names.update((entry_point_port_name(e), None) for e in entry_points
                 if e not in ("web", HTTPS_ENTRY_POINT))
    base = cwd / env.get("MODEL_BASE_PATH", str(REPO / "model.service" / "models"))
    read_timeout = env.get("RUN_LOCAL_READ_TIMEOUT", "").strip()
    run_dir = (cwd / env.get("RUN_DIR", str(REPO / ".run" / str(port)))).resolve()
    return Config(
        port=port,
        model_base_path=base.resolve(),
        model_name=env.get("MODEL_NAME", "cassava"),
        max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1, 2**40),
        ui_root=(cwd / env.get("UI_ROOT", str(REPO / "ui.service" / "html"))).resolve(),
        run_dir=run_dir,
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
        ui_host=_host(env, "UI_HOST", UI_HOST),
        api_host=_host(env, "API_HOST", API_HOST),
        tls=read_tls(env, cwd, run_dir, port),
    )


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value):
        raise ConfigError(f"{name}={value!r} is not a host name")
    return value.lower()


def read_tls(env: Mapping[str, str], cwd: Path, run_dir: Path, port: int) -> TLSConfig | None:
    """HTTPS settings: ACME (ACME_EMAIL, ACME_CA_SERVER, ACME_STORAGE) or own certificate
    (TLS_CERT_FILE + TLS_KEY_FILE, the command's --tls-cert/--tls-key); None = plain HTTP.
    Half a setting is an error naming what is missing, never a silent plain-HTTP start."""
    email = env.get("ACME_EMAIL", "").strip()
    ca_server = env.get("ACME_CA_SERVER", "").strip()
    cert, key = env.get("TLS_CERT_FILE", "").strip(), env.get("TLS_KEY_FILE", "").strip()
    if ca_server and not email:
        raise ConfigError(f"ACME_CA_SERVER={ca_server} is set but ACME_EMAIL is not: ACME "
                          "needs a contact address (ACME_EMAIL=you@example.org)")
    if email and cert:
        raise ConfigError("ACME_EMAIL and --tls-cert (TLS_CERT_FILE) are both set: choose "
                          "certificates from ACME or your own")
    if bool(cert) != bool(key):
        raise ConfigError("--tls-cert and --tls-key (TLS_CERT_FILE, TLS_KEY_FILE) go together")
    if not (email or cert):
        if env.get("HTTPS_PORT", "").strip():
            raise ConfigError("HTTPS_PORT is set but HTTPS is off: set ACME_EMAIL, or "
                              "--tls-cert and --tls-key")
        return None
    https_port = _int(env, "HTTPS_PORT", HTTPS_PORT_DEFAULT, 1)
    if https_port == port:
        raise ConfigError(f"PORT and HTTPS_PORT are both {port}")
    if email:
        # Traefik's static file quotes it; still, an address is one line of printable text.
        if not re.fullmatch(r"[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+", email):
            raise ConfigError(f"ACME_EMAIL={email!r} is not an e-mail address")
        if not re.fullmatch(r"https://[^\s\"]+", ca_server or LETS_ENCRYPT):
            raise ConfigError(f"ACME_CA_SERVER={ca_server!r} is not an https:// URL")
        # Traefik's ACME client reads these roots (a private CA's) when it first calls the CA;
        # a missing file there is a crash of that call, not a clear message: check it now.
        for root in filter(None, env.get("LEGO_CA_CERTIFICATES", "").split(os.pathsep)):
            if not os.access(cwd / root, os.R_OK):
                raise ConfigError(f"LEGO_CA_CERTIFICATES names {root}, which is not readable")
        storage = cwd / env.get("ACME_STORAGE", str(run_dir / "acme.json"))
        return TLSConfig(https_port, acme_email=email, acme_ca_server=ca_server or LETS_ENCRYPT,
                         acme_storage=storage.resolve())
    files = {}
    for name, value in (("TLS_CERT_FILE", cert), ("TLS_KEY_FILE", key)):
        path = (cwd / value).resolve()
        if not os.access(path, os.R_OK) or not path.is_file():
            raise ConfigError(f"{name}={path} is not a readable file")
        files[name] = path
    return TLSConfig(https_port, cert_file=files["TLS_CERT_FILE"],
                     key_file=files["TLS_KEY_FILE"])


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
    if config.tls:
        ports["HTTPS_PORT"] = config.tls.port
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
