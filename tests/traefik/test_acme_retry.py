"""traefik/acme-retry.sh: while Traefik's ACME store lacks a certificate for a name, it writes a
changed file into the watched routes directory (a new configuration: Traefik asks the CA again),
waiting twice as long each time; once every name is issued, it ends. The real Traefik and a real
ACME CA coming back are tests/stack/test_https.py's."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT
from tests.support.waiting import wait_until

SCRIPT = REPO_ROOT / "traefik" / "acme-retry.sh"
NAMES = ("ui.cassava.test", "api.cassava.test")


def write_store(path: Path, names: tuple[str, ...]) -> None:
    """Traefik's acme.json layout (indented JSON), with a certificate per name."""
    path.write_text(json.dumps({"acme": {"Account": {"Email": "ops@cassava.test"},
                                         "Certificates": [{"domain": {"main": name},
                                                           "certificate": "...", "key": "..."}
                                                          for name in names]}}, indent=2))


def start(tmp_path: Path, store: Path, seconds: str = "1") -> subprocess.Popen[str]:
    return subprocess.Popen(["sh", str(SCRIPT), str(tmp_path), str(store), *NAMES],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ACME_RETRY_SECONDS": seconds})


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    store = tmp_path / "acme.json"
    process = start(tmp_path, store)
    try:
        yield process, store
    finally:
        process.kill()
        process.communicate()


@pytest.mark.slow
def test_it_changes_the_routes_until_every_name_is_issued_then_ends(
        tmp_path: Path, running: tuple[subprocess.Popen[str], Path]) -> None:
    process, store = running
    retry = tmp_path / "acme-retry.yml"
    attempt = lambda: retry.is_file() and yaml.safe_load(retry.read_text())[  # noqa: E731
        "http"]["middlewares"]["acme-retry"]["headers"]["customResponseHeaders"]["X-Acme-Retry"]
    # Each attempt is a different configuration (Traefik skips an unchanged one), a whole file.
    wait_until(lambda: attempt() == "1", 10, "the first new configuration")
    write_store(store, NAMES[:1])  # one name issued: not yet done
    wait_until(lambda: attempt() == "2", 10, "the second new configuration")
    assert process.poll() is None
    write_store(store, NAMES)
    assert process.wait(timeout=15) == 0
    _, stderr = process.communicate()
    assert attempt() == "2" and sorted(p.name for p in tmp_path.iterdir()) == [
        "acme-retry.yml", "acme.json"]  # nothing half-written is left behind
    lines = stderr.splitlines()
    assert len(lines) == 2 and all(" ".join(NAMES) in line for line in lines)
    # The waits double: 1 s, 2 s, 4 s ... (an hour at most).
    assert "the next in 2s" in lines[0] and "the next in 4s" in lines[1]


def test_a_store_with_every_name_ends_it_at_once_with_no_change(tmp_path: Path) -> None:
    store = tmp_path / "acme.json"
    write_store(store, NAMES)
    process = start(tmp_path, store, seconds="60")
    assert process.wait(timeout=10) == 0
    assert process.communicate() == ("", "")
    assert not (tmp_path / "acme-retry.yml").exists()


@pytest.mark.parametrize("seconds", ["0", "00", "-1", "1.5", "x"])
def test_a_wait_that_is_not_whole_seconds_is_one_line_and_status_2(tmp_path: Path,
                                                                   seconds: str) -> None:
    process = start(tmp_path, tmp_path / "acme.json", seconds=seconds)
    stdout, stderr = process.communicate(timeout=10)
    assert process.returncode == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "ACME_RETRY_SECONDS" in stderr
