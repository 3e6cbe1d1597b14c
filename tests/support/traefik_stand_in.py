"""A stand-in `traefik` for tests of the shell scripts that start Traefik (traefik/entrypoint.sh,
deploy/swarm/traefik-upstreams.sh): put first on PATH, it prints the GODEBUG it was started with,
its arguments and the static configuration file it was given, then exits."""

from __future__ import annotations

from pathlib import Path

import yaml

SCRIPT = """#!/bin/sh
echo "GODEBUG=${GODEBUG:-}"
echo "ARGS=$*"
cat "${1#--configFile=}"
"""


def install(bin_dir: Path) -> Path:
    """Write the stand-in as `bin_dir/traefik`; returns bin_dir, to put first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "traefik").write_text(SCRIPT)
    (bin_dir / "traefik").chmod(0o755)
    return bin_dir


def printed_configuration(stdout: str) -> dict:
    """The static configuration the stand-in printed after its two header lines."""
    return yaml.safe_load(stdout.split("\n", 2)[2])
