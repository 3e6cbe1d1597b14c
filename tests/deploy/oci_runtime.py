"""Which OCI runtime podman can use on this host's cgroup layout.

crun (podman's default on Debian) refuses the "hybrid" layout when the cgroup2 hierarchy at
/sys/fs/cgroup/unified carries controllers ("cgroups in hybrid mode not supported, drop all
controllers from cgroupv2"; crun's libcrun/cgroup: a tmpfs at /sys/fs/cgroup with cgroup2 on
/unified is hybrid, and a non-blank unified/cgroup.controllers is an error). runc accepts that
layout. So: crun where it runs, runc where crun cannot (installed by scripts/install-deploy-tools),
or the one named in CASSAVA_OCI_RUNTIME.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"
FORCE_VARIABLE = "CASSAVA_OCI_RUNTIME"


def mount_types(mountinfo: str) -> dict[str, str]:
    """Mount point -> file system type, from /proc/self/mountinfo (the last mount on a point
    hides the earlier ones)."""
    types: dict[str, str] = {}
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4]
        after_separator = line.split(" - ", 1)[1].split()
        types[mount_point] = after_separator[0]
    return types


def cgroup_layout(mountinfo: str) -> str:
    """"unified" (cgroup2 at the root), "hybrid" (v1 plus cgroup2 at unified/) or "legacy"."""
    types = mount_types(mountinfo)
    if types.get(CGROUP_ROOT) == "cgroup2":
        return "unified"
    if types.get(f"{CGROUP_ROOT}/unified") == "cgroup2":
        return "hybrid"
    return "legacy"


def crun_refuses(mountinfo: str, unified_controllers: str) -> bool:
    """True where crun will not start a container: hybrid, with controllers on the cgroup2 side."""
    return cgroup_layout(mountinfo) == "hybrid" and bool(unified_controllers.strip())


def choose(mountinfo: str, unified_controllers: str, forced: str | None,
           installed: Callable[[str], bool]) -> str:
    """The runtime podman should use; ValueError saying what to install when none can run."""
    if forced:
        if not installed(forced):
            raise ValueError(f"{FORCE_VARIABLE}={forced} but {forced} is not installed")
        return forced
    if not crun_refuses(mountinfo, unified_controllers) and installed("crun"):
        return "crun"
    if installed("runc"):
        return "runc"
    layout = cgroup_layout(mountinfo)
    raise ValueError(f"crun cannot run containers on this {layout} cgroup layout and runc is not "
                     "installed (scripts/install-deploy-tools)")


def read_controllers(root: Path = Path(CGROUP_ROOT)) -> str:
    try:
        return (root / "unified" / "cgroup.controllers").read_text()
    except OSError:
        return ""


def host_runtime() -> str:
    """`choose` for this host and environment."""
    return choose(Path("/proc/self/mountinfo").read_text(), read_controllers(),
                  os.environ.get(FORCE_VARIABLE) or None,
                  lambda name: shutil.which(name) is not None
                  or Path("/usr/sbin", name).exists())
