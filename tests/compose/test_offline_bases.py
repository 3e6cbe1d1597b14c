"""scripts/build-offline-bases: the stand-ins build, are cached, and honour the contracts of the
official images that the project's Dockerfiles rely on."""

from __future__ import annotations

import subprocess

import pytest

from tests.compose.project import docker_inspect, run
from tests.support.paths import SCRIPTS_DIR

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker_run(image: str, *argv: str, entrypoint: str | None = None) -> str:
    options = ["--entrypoint", entrypoint] if entrypoint else []
    return run(["docker", "run", "--rm", "--network", "none", *options, image, *argv]).stdout


def test_second_run_rebuilds_nothing(offline_build: subprocess.CompletedProcess[str]) -> None:
    again = run([str(SCRIPTS_DIR / "build-offline-bases")], timeout=600)
    for name in ("python", "nginx-unprivileged", "traefik", "tensorflow-serving", "prometheus"):
        assert f"{name}: up to date" in again.stderr, again.stderr


def test_python(offline_bases: dict[str, str]) -> None:
    image = offline_bases["PYTHON_IMAGE"]
    assert docker_run(image, "python", "--version").startswith("Python 3.11.")
    assert "python 3.11" in docker_run(image, "pip", "--version")


def test_nginx_unprivileged(offline_bases: dict[str, str]) -> None:
    image = offline_bases["NGINX_IMAGE"]
    info = docker_inspect(image)["Config"]
    assert info["User"] == "101" and "8080/tcp" in info["ExposedPorts"]
    assert info["Cmd"] == ["nginx", "-g", "daemon off;"] and info["StopSignal"] == "SIGQUIT"
    assert docker_run(image, "id").startswith("uid=101(nginx) gid=101(nginx)")
    layout = "test -d /etc/nginx/conf.d && test -d /usr/share/nginx/html && command -v wget"
    assert docker_run(image, "sh", "-c", f"{layout} && echo ok").endswith("ok\n")
    # Runs unprivileged on a read-only root with only /tmp writable, like the real one.
    result = run(["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                  "--cap-drop", "ALL", image, "nginx", "-t"])
    assert "test is successful" in result.stderr


def test_traefik(offline_bases: dict[str, str]) -> None:
    image = offline_bases["TRAEFIK_IMAGE"]
    config = docker_inspect(image)["Config"]
    assert config["Entrypoint"] == ["/entrypoint.sh"] and config["Cmd"] == ["traefik"]
    # The entrypoint passes a Traefik subcommand to traefik, as the official one does.
    assert "Version:      3." in docker_run(image, "version")


def test_tensorflow_serving(offline_bases: dict[str, str]) -> None:
    image = offline_bases["TF_SERVING_IMAGE"]
    config = docker_inspect(image)["Config"]
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert {"MODEL_BASE_PATH=/models", "MODEL_NAME=model"} <= set(config["Env"])
    assert {"8500/tcp", "8501/tcp"} <= set(config["ExposedPorts"])
    script = docker_run(image, "/usr/bin/tf_serving_entrypoint.sh", entrypoint="cat")
    # Like the official script: bash, the server as a child (no exec), the stock flags.
    assert script.startswith("#!/bin/bash") and "exec" not in script
    assert "tensorflow_model_server --port=8500 --rest_api_port=8501" in script
    assert "--model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}" in script
    assert docker_run(image, "--version", entrypoint="tensorflow_model_server").strip()


def test_prometheus(offline_bases: dict[str, str]) -> None:
    image = offline_bases["PROMETHEUS_IMAGE"]
    config = docker_inspect(image)["Config"]
    # The official image's contract: entrypoint, flags, data directory, user, port.
    assert config["Entrypoint"] == ["/bin/prometheus"]
    assert "--storage.tsdb.path=/prometheus" in config["Cmd"]
    assert config["User"].split(":")[0] == "65534" and config["WorkingDir"] == "/prometheus"
    assert "9090/tcp" in config["ExposedPorts"]
    assert "prometheus, version 2." in docker_run(image, "--version")
    assert "promtool, version 2." in docker_run(image, "--version", entrypoint="/bin/promtool")
