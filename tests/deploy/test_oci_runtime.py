"""The OCI runtime podman gets (oci_runtime.py): the choice from synthetic /proc/self/mountinfo
and cgroup.controllers files of each layout, and the choice acting in a real podman here — the
runtime predicted to work starts a container, the one predicted to be refused is refused, and
runc forced works on any layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.kube import Podman, podman_problem
from tests.deploy.oci_runtime import (
    FORCE_VARIABLE,
    cgroup_layout,
    choose,
    crun_refuses,
    host_runtime,
    read_controllers,
)
from tests.support.absent import skip_or_fail

# Lines as the kernel writes them (proc(5)); only mount point and type matter here.
ROOT_TMPFS = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755"
V1_MEMORY = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory"
V1_SYSTEMD = "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd"
UNIFIED_AT_ROOT = "31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - " \
                  "cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot"
UNIFIED_SUBDIR = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"

UNIFIED = "\n".join([UNIFIED_AT_ROOT])
LEGACY = "\n".join([ROOT_TMPFS, V1_MEMORY, V1_SYSTEMD])
HYBRID = "\n".join([ROOT_TMPFS, V1_MEMORY, V1_SYSTEMD, UNIFIED_SUBDIR])


def everything_installed(name: str) -> bool:
    return True


@pytest.mark.parametrize(("mountinfo", "layout"), [
    (UNIFIED, "unified"), (LEGACY, "legacy"), (HYBRID, "hybrid"),
    # A tmpfs mounted over a cgroup2 root hides it.
    (UNIFIED_AT_ROOT + "\n" + ROOT_TMPFS, "legacy"),
])
def test_the_layout_is_read_from_mountinfo(mountinfo: str, layout: str) -> None:
    assert cgroup_layout(mountinfo) == layout


@pytest.mark.parametrize(("mountinfo", "controllers", "runtime"), [
    (UNIFIED, "cpuset cpu io memory hugetlb pids\n", "crun"),
    (LEGACY, "", "crun"),
    (HYBRID, "\n", "crun"),  # systemd's usual hybrid: cgroup2 tracks processes only
    (HYBRID, "hugetlb\n", "runc"),  # this machine's (and the failing CI machine's) layout
])
def test_crun_where_it_runs_runc_where_it_refuses(mountinfo: str, controllers: str,
                                                  runtime: str) -> None:
    assert crun_refuses(mountinfo, controllers) == (runtime == "runc")
    assert choose(mountinfo, controllers, None, everything_installed) == runtime


def test_a_forced_runtime_wins_and_must_be_installed() -> None:
    assert choose(UNIFIED, "memory", "runc", everything_installed) == "runc"
    with pytest.raises(ValueError, match=f"{FORCE_VARIABLE}=runc but runc is not installed"):
        choose(UNIFIED, "memory", "runc", lambda name: name != "runc")


def test_without_runc_a_refused_layout_says_what_to_install() -> None:
    with pytest.raises(ValueError, match="hybrid cgroup layout and runc is not installed"):
        choose(HYBRID, "hugetlb", None, lambda name: name == "crun")
    assert choose(UNIFIED, "memory", None, lambda name: name == "runc") == "runc"


def test_the_controllers_file_is_read_from_the_unified_mount(tmp_path: Path) -> None:
    assert read_controllers(tmp_path) == ""  # no unified/ at all: a unified or legacy host
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    assert read_controllers(tmp_path) == "hugetlb\n"


def minimal_rootfs(directory: Path) -> Path:
    """A root file system with /bin/sh and the libraries it links (no image, no registry)."""
    shell = Path(os.path.realpath(shutil.which("sh") or "/bin/sh"))
    libraries = subprocess.run(["ldd", str(shell)], capture_output=True, text=True,
                               check=True).stdout
    for path in [shell, *(Path(word) for word in libraries.split() if word.startswith("/"))]:
        target = directory / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (directory / "bin").mkdir(exist_ok=True)
    if not (directory / "bin" / "sh").exists():
        (directory / "bin" / "sh").symlink_to(f"/{shell.relative_to('/')}")
    for name in ("proc", "sys", "dev", "etc", "tmp"):
        (directory / name).mkdir(exist_ok=True)
    return directory


@pytest.fixture
def rootfs(tmp_path: Path) -> Iterator[Path]:
    if problem := podman_problem():
        skip_or_fail(problem)
    yield minimal_rootfs(tmp_path / "rootfs")


def run_in(runtime: str, workdir: Path, rootfs: Path) -> subprocess.CompletedProcess[str]:
    runner = Podman(workdir, network=f"cassava-oci-{uuid.uuid4().hex[:8]}", runtime=runtime)
    try:
        return runner("run", "--rm", "--network", "none", "--rootfs", str(rootfs),
                      "/bin/sh", "-c", "echo ran", check=False, timeout=120)
    finally:
        runner.close()


@pytest.mark.docker
@pytest.mark.parametrize("runtime", ["crun", "runc"])
def test_podman_runs_a_container_exactly_where_the_choice_says(
        runtime: str, rootfs: Path, tmp_path: Path) -> None:
    if not (shutil.which(runtime) or Path("/usr/sbin", runtime).exists()):
        pytest.fail(f"{runtime} is not installed (scripts/install-deploy-tools installs both)")
    mountinfo = Path("/proc/self/mountinfo").read_text()
    refused = runtime == "crun" and crun_refuses(mountinfo, read_controllers())
    result = run_in(runtime, tmp_path / "podman", rootfs)
    if refused:
        assert result.returncode != 0 and "hybrid mode not supported" in result.stderr, result
    else:
        assert result.returncode == 0 and result.stdout.strip() == "ran", result


@pytest.mark.docker
@pytest.mark.parametrize("forced", [None, "runc"], ids=["chosen", "runc-forced"])
def test_the_runtime_podman_is_given_runs_containers(
        forced: str | None, rootfs: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    if forced:
        monkeypatch.setenv(FORCE_VARIABLE, forced)
    else:
        monkeypatch.delenv(FORCE_VARIABLE, raising=False)
    runtime = host_runtime()
    if forced:
        assert runtime == forced
    result = run_in(runtime, tmp_path / "podman", rootfs)
    assert result.returncode == 0 and result.stdout.strip() == "ran", result
