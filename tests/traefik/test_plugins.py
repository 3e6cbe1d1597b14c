"""The Traefik plugins (traefik/plugins-local, Go run by Traefik's Yaegi): each plugin's own Go unit
tests (`go test`) and `go vet`, with Debian's Go (scripts/bootstrap), run from here so the suite
counts them. Their behaviour inside a real Traefik is tested in tests/stack and tests/compose."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.absent import skip_or_fail
from tests.support.paths import REPO_ROOT

PLUGINS = sorted((REPO_ROOT / "traefik" / "plugins-local" / "src").glob("*/*/go.mod"))

pytestmark = pytest.mark.slow  # compiles Go's standard library the first time (~30 s of CPU)


def go(plugin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("go") is None:
        skip_or_fail("Go is not installed (scripts/bootstrap installs Debian's golang-go)")
    # No module downloads (the plugins use the standard library only), nothing reachable anyway.
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    return subprocess.run(["go", *args], cwd=plugin, capture_output=True, text=True,
                          timeout=600, check=False, env=env)


def test_every_plugin_is_found() -> None:
    assert {path.parent.name for path in PLUGINS} >= {"requestid", "problemdetails",
                                                      "multipartlimit", "uploadpace"}


@pytest.mark.parametrize("plugin", [path.parent for path in PLUGINS],
                         ids=[path.parent.name for path in PLUGINS])
def test_go_vet_and_go_test_pass(plugin: Path) -> None:
    assert list(plugin.glob("*_test.go")), f"{plugin.name} has no Go tests"
    vet = go(plugin, "vet", "./...")
    assert vet.returncode == 0, vet.stdout + vet.stderr
    tested = go(plugin, "test", "-count=1", "-v", "./...")
    assert tested.returncode == 0, tested.stdout[-4000:] + tested.stderr[-2000:]
    assert "--- PASS" in tested.stdout and "--- FAIL" not in tested.stdout
