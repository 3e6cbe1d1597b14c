"""The Kubernetes manifests for tests: the pinned checkers (scripts/install-deploy-tools), overlays
rendered with `kubectl kustomize`, and `podman kube play` with a private store and config."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from tests.deploy.oci_runtime import host_runtime
from tests.support.paths import REPO_ROOT, SCRIPTS_DIR

KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
TOOLS_BIN = REPO_ROOT / ".venv-deploy" / "bin"

# podman here: no systemd (cgroupfs, file events), limits it cannot read from the host's
# defaults (the measured facts), and the OCI runtime this cgroup layout allows
# (oci_runtime.py: crun, or runc where crun refuses the layout).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "{runtime}"
"""


def install_tools() -> None:
    subprocess.run([str(SCRIPTS_DIR / "install-deploy-tools")], check=True, timeout=900,
                   capture_output=True)


def tool(name: str) -> str:
    return str(TOOLS_BIN / name)


def render(kustomization_dir: Path) -> str:
    result = subprocess.run([tool("kubectl"), "kustomize", str(kustomization_dir)], check=False,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {kustomization_dir}: {result.stderr[-2000:]}")
    return result.stdout


def documents(rendered: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def podman_problem() -> str | None:
    """Why podman cannot run containers here, or None."""
    if os.geteuid() != 0:
        return "podman is run rootful here (needs root)"
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/install-deploy-tools)"
    try:
        host_runtime()
    except ValueError as error:
        return str(error)
    return None


class Podman:
    """podman with a private store, run dir, config and network, all removed by `close`."""

    def __init__(self, workdir: Path, network: str, runtime: str) -> None:
        self.workdir = workdir
        self.network = network
        self.runtime = runtime
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF.format(runtime=runtime))
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}
        # podman refuses a run root path longer than 50 characters.
        self.runroot = Path(tempfile.mkdtemp(prefix="cassava-podman-"))
        self.base = ["podman", "--root", str(workdir / "storage"), "--runroot", str(self.runroot)]

    def __call__(self, *args: str, timeout: float = 300, check: bool = True,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.base, *args], env=self.env, capture_output=True,
                                timeout=timeout, check=False, input=stdin)
        out = subprocess.CompletedProcess(result.args, result.returncode,
                                          result.stdout.decode(errors="replace"),
                                          result.stderr.decode(errors="replace"))
        if check and out.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {out.returncode}:\n"
                               f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return out

    def load_from_docker(self, *images: str) -> None:
        """`docker save | podman load`: the images built on the Docker engine, no registry."""
        saved = subprocess.run(["docker", "save", *images], capture_output=True, check=True,
                               timeout=600).stdout
        self("load", stdin=saved, timeout=600)

    def play(self, manifest: Path) -> None:
        self("kube", "play", "--network", self.network, str(manifest), timeout=300)

    def ip(self, container: str) -> str:
        return self("inspect", "--format",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container
                    ).stdout.strip()

    def logs(self, container: str) -> str:
        result = self("logs", container, check=False)
        return result.stdout + result.stderr

    def close(self) -> None:
        self("pod", "rm", "--all", "--force", check=False, timeout=120)
        self("network", "rm", "--force", self.network, check=False)
        self("volume", "prune", "--force", check=False)
        self("rmi", "--all", "--force", check=False, timeout=300)
        shutil.rmtree(self.runroot, ignore_errors=True)
