"""docker-compose.yml, .env.example and the Dockerfiles, checked statically (no engine needed):
compose validates, hadolint passes, every variable is documented, the hardening is declared."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.compose.project import (
    COMPOSE_FILE,
    HTTPS_COMPOSE_FILE,
    OFFLINE_ENV,
    SERVICES,
    compose_command,
    read_env_file,
    run,
)
from tests.support.paths import REPO_ROOT

HADOLINT = REPO_ROOT / ".venv" / "bin" / "hadolint"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
SKIP_DIRS = {".venv", ".git", "node_modules", "test-artifacts", ".run", "build"}
# The service images and the base-image variable each is built on.
SERVICE_DOCKERFILES = {
    "traefik": ("traefik/Dockerfile", "TRAEFIK_IMAGE"),
    "ui.service": ("ui.service/Dockerfile", "NGINX_IMAGE"),
    "api.service": ("api.service/Dockerfile", "PYTHON_IMAGE"),
    "model.service": ("model.service/Dockerfile", "TF_SERVING_IMAGE"),
}


def all_dockerfiles() -> list[Path]:
    return sorted(p for p in REPO_ROOT.rglob("Dockerfile")
                  if not SKIP_DIRS.intersection(p.relative_to(REPO_ROOT).parts))


def compose_json(tmp_path: Path, **env: str) -> dict[str, Any]:
    """`docker compose config` as JSON, with only the given variables (no developer .env)."""
    env_file = tmp_path / "config.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = run([*compose_command(), "--file", str(COMPOSE_FILE), "--env-file", str(env_file),
                  "--project-name", "config-check", "config", "--format", "json"])
    return json.loads(result.stdout)


@pytest.fixture
def config(tmp_path: Path) -> dict[str, Any]:
    return compose_json(tmp_path)


def test_compose_config_validates(tmp_path: Path) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    result = run([*compose_command(), "--file", str(COMPOSE_FILE), "--env-file", str(env_file),
                  "config", "--quiet"], check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"compose warned: {result.stderr}"


def test_the_four_services(config: dict[str, Any]) -> None:
    assert set(config["services"]) == set(SERVICES)


@pytest.mark.parametrize("dockerfile", all_dockerfiles(),
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    result = run([str(HADOLINT), "--no-color", str(dockerfile)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dockerfile_is_linted() -> None:
    found = {str(p.relative_to(REPO_ROOT)) for p in all_dockerfiles()}
    assert {path for path, _ in SERVICE_DOCKERFILES.values()} <= found


def compose_variables() -> set[str]:
    """Every variable docker-compose.yml (and its HTTPS overlay) reads: ${VAR...} and
    value-less build args."""
    text = COMPOSE_FILE.read_text() + HTTPS_COMPOSE_FILE.read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    build_args = set(re.findall(r"^\s+- ([A-Z][A-Z0-9_]*)\s*(?:#.*)?$", text, re.MULTILINE))
    return interpolated | build_args


def test_env_example_documents_every_variable() -> None:
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    used = compose_variables()
    assert used - documented == set(), "variables used by docker-compose.yml but not documented"
    assert documented - used - {"COMPOSE_PROJECT_NAME"} == set(), "documented but unused"


def test_env_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """Copying .env.example to .env as is must give the defaults."""
    values = read_env_file(ENV_EXAMPLE)
    assert compose_json(tmp_path, **values) == compose_json(tmp_path)


def test_every_service_is_hardened(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("restart") == "unless-stopped", name
        assert service.get("stop_grace_period"), name
        assert any(t.startswith("/tmp:") for t in service.get("tmpfs", [])), name
        assert service["healthcheck"]["test"][0] == "CMD", name
        limits = service["deploy"]["resources"]["limits"]
        assert int(limits["memory"]) > 0 and int(limits["pids"]) > 0, name
        assert service["deploy"]["restart_policy"]["condition"] == "any", name
        assert "container_name" not in service, f"{name}: container_name breaks Swarm/scaling"
        assert "privileged" not in service and "cap_add" not in service, name
        for volume in service.get("volumes", []):
            assert "docker.sock" not in str(volume.get("source", "")), name


def test_only_traefik_publishes_ports(config: dict[str, Any]) -> None:
    published = {name for name, s in config["services"].items() if s.get("ports")}
    assert published == {"traefik"}
    (port,) = config["services"]["traefik"]["ports"]
    assert (port["target"], port["published"], port["host_ip"]) == (8080, "80", "0.0.0.0")


def test_dependencies_wait_for_health(config: dict[str, Any]) -> None:
    services = config["services"]
    assert {k: v["condition"] for k, v in services["traefik"]["depends_on"].items()} == {
        "ui.service": "service_healthy", "api.service": "service_healthy"}
    assert services["api.service"]["depends_on"]["model.service"]["condition"] == \
        "service_healthy"


def test_model_network_is_internal_and_shared_only_with_the_api(config: dict[str, Any]) -> None:
    members = {name for name, s in config["services"].items() if "model" in s["networks"]}
    assert members == {"api.service", "model.service"}
    assert config["networks"]["model"].get("internal") is True
    assert config["services"]["model.service"]["networks"].keys() == {"model"}
    # Only Traefik has a network with a way out; each upstream network is internal too.
    for name in ("ui", "api"):
        assert config["networks"][name].get("internal") is True


def test_model_repository_is_mounted_read_only(tmp_path: Path) -> None:
    config = compose_json(tmp_path, MODEL_REPOSITORY=str(tmp_path))
    for name in ("model.service", "api.service"):
        (volume,) = config["services"][name]["volumes"]
        assert (volume["type"], volume["source"], volume["target"], volume["read_only"]) == (
            "bind", str(tmp_path), "/models", True), name
    assert config["services"]["api.service"]["environment"]["LABELS_PATH"] == \
        "/models/cassava/labels.json"


def dockerfile_base(path: Path) -> tuple[str, str, str]:
    """(variable, default, FROM line) of a Dockerfile whose base image is a build arg."""
    text = path.read_text()
    arg = re.search(r"^ARG ([A-Z_]+)=(\S+)$", text, re.MULTILINE)
    assert arg, f"{path}: no `ARG NAME=default` for the base image"
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    return arg.group(1), arg.group(2), froms[-1]


@pytest.mark.parametrize("service", SERVICE_DOCKERFILES)
def test_base_image_is_a_build_arg_defaulting_to_a_pinned_official_image(
        service: str, config: dict[str, Any], tmp_path: Path) -> None:
    path, variable = SERVICE_DOCKERFILES[service]
    name, default, last_from = dockerfile_base(REPO_ROOT / path)
    assert name == variable and last_from == f"${{{variable}}}"
    image, _, tag = default.rpartition(":")
    assert image and re.search(r"\d+\.\d+", tag) and "latest" not in tag, default
    assert not image.startswith("cassava-offline"), "the default must be the official image"
    # compose passes the variable only when set; unset, the Dockerfile's pin applies.
    assert "args" not in config["services"][service]["build"]
    overridden = compose_json(tmp_path, **{variable: "example/base:1"})
    assert overridden["services"][service]["build"]["args"] == {variable: "example/base:1"}


# Images of services that only a compose profile starts (tests/compose/test_monitoring.py).
PROFILE_DOCKERFILES = {
    "prometheus": ("monitoring/prometheus/Dockerfile", "PROMETHEUS_IMAGE"),
}


def test_offline_env_overrides_only_the_base_images() -> None:
    variables = {variable for _, variable in
                 [*SERVICE_DOCKERFILES.values(), *PROFILE_DOCKERFILES.values()]}
    offline = read_env_file(OFFLINE_ENV)
    assert set(offline) == variables
    assert all(value.startswith("cassava-offline/") for value in offline.values())


@pytest.mark.parametrize("service", SERVICE_DOCKERFILES)
def test_images_run_as_non_root(service: str) -> None:
    text = (REPO_ROOT / SERVICE_DOCKERFILES[service][0]).read_text()
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users


def test_model_image_signals_reach_the_server() -> None:
    """tini from the package manager; the server exec'd (tini's own child, not bash's) by the
    stock entrypoint's command line, so SIGTERM reaches it and it can finish shutting down."""
    text = (REPO_ROOT / "model.service" / "Dockerfile").read_text()
    assert re.search(r"apt-get install [^\n]*\btini\b", text), "tini from the package manager"
    entrypoint = re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert [json.loads(e) for e in entrypoint] == [
        ["tini", "-g", "--", "/usr/local/bin/tf_serving_exec_entrypoint.sh"]]
    derive = re.search(r"^RUN sed 's/\^tensorflow_model_server /exec tensorflow_model_server /' "
                       r"\\\n\s+/usr/bin/tf_serving_entrypoint.sh > "
                       r"/usr/local/bin/tf_serving_exec_entrypoint.sh", text, re.MULTILINE)
    assert derive, "the exec'ing entrypoint must be derived from the stock script"
    assert re.search(r"^ENV MODEL_NAME=cassava$", text, re.MULTILINE)


def test_swarm_accepts_the_file_apart_from_depends_on(tmp_path: Path) -> None:
    """`docker stack deploy` reads the same file; only the long depends_on form (conditions,
    which Swarm ignores anyway) and compose profiles (Swarm deploys every service: Prometheus
    too) are outside its schema, so that is all an operator strips."""
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI (needed for `docker stack config`)")
    lines, skipping = [], False
    for line in COMPOSE_FILE.read_text().splitlines():
        if re.match(r"^    profiles:", line):
            continue
        if re.match(r"^    depends_on:", line):
            skipping = True
            continue
        if skipping and line.startswith("      "):
            continue
        skipping = False
        lines.append(line)
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text("\n".join(lines) + "\n")
    result = run(["docker", "stack", "config", "--compose-file", str(stack_file)], check=False,
                 env={"PATH": os.environ["PATH"], "MODEL_REPOSITORY": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "depends_on" not in result.stdout and "read_only: true" in result.stdout


def spooling_routes() -> dict[str, str]:
    """Router name -> its buffering middleware, for the routers of traefik/dynamic.yml that may
    spool bodies to disk (upload-cap, batch-cap); every one must come after upload-slots."""
    text = (REPO_ROOT / "traefik" / "dynamic.yml").read_text()
    routers = text.split("\n  middlewares:\n", 1)[0]
    found = {}
    for name, body in re.findall(r"^    ([\w-]+):\n((?:      .*\n)+)", routers, re.MULTILINE):
        chain = re.search(r"middlewares: \[([^\]]*)\]", body, re.DOTALL)
        names = [m.strip() for m in chain[1].split(",")] if chain else []
        spool = [m for m in names if m in ("upload-cap", "batch-cap")]
        if spool:
            found[name] = spool[0]
            if "upload-slots" in names:
                assert names.index("upload-slots") < names.index(spool[0]), name
    return found


def test_the_proxy_tmpfs_holds_every_upload_slot_and_fits_its_memory_limit(
        config: dict[str, Any]) -> None:
    """Traefik spools bodies over 1 MiB to its tmpfs: the upload slots of every spooling route
    (a counter per route) at their maximum body must fit, or a crowd of uploads gets a 500."""
    traefik = config["services"]["traefik"]
    env = traefik["environment"]
    routes = spooling_routes()
    capped = {name: cap for name, cap in routes.items() if name.endswith("-large")}
    # Every spooling route is either capped, or takes only small bodies (its -large twin does).
    assert {name for name in routes if f"{name}-large" not in routes} == set(capped), routes
    cap_bytes = {"upload-cap": int(env["MAX_UPLOAD_BYTES"]),
                 "batch-cap": int(env["MAX_BATCH_BYTES"])}
    needed = int(env["UPLOAD_SLOTS"]) * sum(cap_bytes[cap] for cap in capped.values())
    # The API spools what the proxy forwards (Starlette, past 1 MiB): the same bound.
    for service in ("traefik", "api.service"):
        (tmpfs,) = [t for t in config["services"][service]["tmpfs"] if t.startswith("/tmp:")]
        size = re.search(r"size=(\d+)m", tmpfs)
        assert size and int(size[1]) * 2**20 >= needed, (service, tmpfs, needed)
    memory = int(traefik["deploy"]["resources"]["limits"]["memory"])
    assert memory >= 256 * 2**20 + int(size[1]) * 2**20


# -- HTTPS overlay (docs/tls.md) ----------------------------------------------------------------

def https_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    env_file = tmp_path / "https.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return run([*compose_command(), "--file", str(COMPOSE_FILE), "--file",
                str(HTTPS_COMPOSE_FILE), "--env-file", str(env_file), "--project-name",
                "https-check", "config", "--format", "json"], check=False,
               env={k: v for k, v in os.environ.items() if k not in env and k not in (
                   "ACME_EMAIL", "ACME_CA_SERVER", "HTTPS_PORT", "UI_HOST", "API_HOST")})


def test_https_overlay_publishes_websecure_with_a_volume_for_the_acme_store(
        tmp_path: Path) -> None:
    result = https_config(tmp_path, ACME_EMAIL="ops@example.org", UI_HOST="ui.example.org",
                          API_HOST="api.example.org")
    assert result.returncode == 0, result.stderr
    traefik = json.loads(result.stdout)["services"]["traefik"]
    published = {(p["target"], p["published"]) for p in traefik["ports"]}
    assert published == {(8080, "80"), (8443, "443")}
    env = traefik["environment"]
    assert env["ACME_EMAIL"] == "ops@example.org"
    assert env["ACME_CA_SERVER"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert env["HTTPS_PORT"] == "443" and env["UI_ORIGINS"] == "https://ui.example.org"
    (volume,) = traefik["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == (
        "volume", "acme", "/var/lib/traefik")


def test_https_overlay_without_acme_email_is_one_clear_error(tmp_path: Path) -> None:
    result = https_config(tmp_path, UI_HOST="ui.example.org")
    assert result.returncode != 0
    assert "ACME_EMAIL is not set; HTTPS needs an ACME contact address" in result.stderr


def test_without_the_overlay_nothing_listens_for_https(config: dict[str, Any]) -> None:
    (port,) = config["services"]["traefik"]["ports"]
    assert port["target"] == 8080
    assert "ACME_EMAIL" not in config["services"]["traefik"]["environment"]
    assert "volumes" not in config["services"]["traefik"]
