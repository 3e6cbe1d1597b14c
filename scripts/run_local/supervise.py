"""Process supervision (I/O): start children in their own process groups, relay their output
line by line with a name prefix, poll their readiness, and stop them all without orphans."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import json
import os
import selectors
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from run_local.noise import is_startup_noise

STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
TICK_EVERY = 5.0  # seconds between "still waiting" lines
FIRST_TO_STOP = "traefik"  # the proxy goes first: no request reaches a stopping service

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
PR_SET_PDEATHSIG = 1


def _die_with_runner() -> None:
    """In the child, before exec: SIGTERM when the runner dies, however it dies."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def http_get(port: int, path: str, host: str = "127.0.0.1", timeout: float = 1.0,
             tls: bool = False) -> tuple[int, dict[str, str], bytes]:
    """One GET to 127.0.0.1:port with `Host: host`. tls=True: a readiness probe of the own
    proxy over HTTPS, which checks routing, not the certificate (it may not be issued yet)."""
    connection: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                                 context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ready_check: Callable[[], str | None]  # a short "ready" note, or None while not ready
    waiting_for: str
    ports: dict[str, int]
    after: str | None = None  # checked only once this service is ready (keeps logs quiet)
    proc: subprocess.Popen[bytes] | None = None
    pending: bytes = b""
    ready_note: str | None = None
    exit_reported: bool = False
    started_at: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


class Supervisor:
    """Runs services until a stop signal (status 0) or a failure (status 1)."""

    COLORS: ClassVar[dict[str, str]] = {
        "run-local": "1", "model-server": "35", "api": "36", "nginx": "32", "traefik": "34"}

    def __init__(self, services: list[Service], state_file: Path, ready_timeout: float,
                 keep_going: bool, state: Callable[[], dict[str, object]],
                 banner: Callable[[float], list[str]]) -> None:
        self.services = services
        self.state_file = state_file
        self.ready_timeout = ready_timeout
        self.keep_going = keep_going
        self.state = state  # what services.json says besides the services
        self.banner = banner  # lines to print once everything is ready
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.selector = selectors.DefaultSelector()
        self.stop_signal: int | None = None
        self.started = time.monotonic()

    # -- output ---------------------------------------------------------------------------------
    def say(self, name: str, text: str) -> None:
        prefix = f"{name:<12} |"
        if self.color:
            prefix = f"\033[{self.COLORS.get(name, '0')}m{prefix}\033[0m"
        sys.stdout.write(f"{prefix} {text}\n")
        sys.stdout.flush()

    def relay(self, timeout: float) -> None:
        """Print whatever children wrote, line by line, prefixed with their name."""
        for key, _ in self.selector.select(timeout):
            service: Service = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:  # EOF: the child closed its output (it exited)
                self.selector.unregister(key.fileobj)
                chunk = b"\n" if service.pending else b""
            data = service.pending + chunk
            *lines, service.pending = data.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").rstrip("\r")
                if not is_startup_noise(service.name, text, service.ready_note is not None):
                    self.say(service.name, text)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, service: Service) -> subprocess.Popen[bytes]:
        service.proc = subprocess.Popen(
            service.argv, cwd=service.cwd, env=service.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_runner)
        service.started_at = time.monotonic()
        assert service.proc.stdout is not None  # stdout=PIPE
        os.set_blocking(service.proc.stdout.fileno(), False)
        self.selector.register(service.proc.stdout, selectors.EVENT_READ, service)
        return service.proc

    def write_state(self, ready: bool) -> None:
        state = {
            "runner_pid": os.getpid(),
            **self.state(),
            "ready": ready,
            "services": {s.name: {"pid": s.proc.pid if s.proc else None, "ports": s.ports,
                                  "ready": s.ready_note is not None} for s in self.services},
        }
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_file)

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        try:
            for service in self.services:
                proc = self.start(service)
                self.say("run-local", f"started {service.name} (pid {proc.pid}, "
                                      f"ports {service.ports})")
            self.write_state(ready=False)
            status = self.supervise()
        finally:
            self.stop_all()
            self.state_file.unlink(missing_ok=True)
        return status

    def _check_readiness(self, now: float) -> None:
        ready = {s.name for s in self.services if s.ready_note}
        for service in self.services:
            if service.after and service.after not in ready:
                continue
            if service.ready_note is None and service.alive():
                try:
                    service.ready_note = service.ready_check()
                except (OSError, http.client.HTTPException, ValueError):
                    service.ready_note = None
                if service.ready_note:
                    self.say("run-local", f"{service.name} ready: {service.ready_note} "
                                          f"({now - service.started_at:.1f}s)")

    def supervise(self) -> int:
        next_tick = time.monotonic() + TICK_EVERY
        next_check = 0.0
        all_ready = False
        while self.stop_signal is None:
            self.relay(0.2)
            for service in self.services:
                if service.proc and service.proc.poll() is not None and not service.exit_reported:
                    service.exit_reported = True
                    self.relay(0)
                    self.say("run-local", f"{service.name} exited with status "
                                          f"{service.proc.returncode}")
                    if not self.keep_going or not all_ready:
                        self.say("run-local", "stopping everything (a service died)")
                        return 1
            now = time.monotonic()
            if not all_ready and now >= next_check:
                next_check = now + 0.5
                self._check_readiness(now)
                if all(s.ready_note for s in self.services):
                    all_ready = True
                    self.write_state(ready=True)
                    for line in self.banner(now - self.started):
                        self.say("run-local", line)
                elif now - self.started > self.ready_timeout:
                    late = [s.name for s in self.services if not s.ready_note]
                    self.say("run-local", f"not ready after {self.ready_timeout:.0f}s: "
                                          f"{', '.join(late)} (READY_TIMEOUT)")
                    return 1
            if not all_ready and now >= next_tick:
                next_tick = now + TICK_EVERY
                waiting = [f"{s.name} ({s.waiting_for})" for s in self.services
                           if not s.ready_note]
                self.say("run-local", f"waiting {now - self.started:.0f}s for "
                                      f"{', '.join(waiting)}")
        self.say("run-local", f"received {signal.Signals(self.stop_signal).name}: stopping")
        return 0

    def stop_all(self) -> None:
        """SIGTERM to each process group (the proxy first), SIGKILL to what lingers, reap all."""
        ordered = sorted(self.services, key=lambda s: s.name != FIRST_TO_STOP)
        for service in ordered:
            if service.proc is not None and service.alive():
                signal_group(service.proc.pid, signal.SIGTERM)
            if service.name == FIRST_TO_STOP and service.alive():
                self._wait_for([service], 3.0)
        self._wait_for(ordered, STOP_TIMEOUT)
        for service in ordered:
            if service.proc is None:
                continue
            if service.alive():
                self.say("run-local", f"{service.name} ignored SIGTERM for "
                                      f"{STOP_TIMEOUT:.0f}s: SIGKILL")
            signal_group(service.proc.pid, signal.SIGKILL)  # also any stray grandchild
            try:
                service.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.say("run-local", f"{service.name} (pid {service.proc.pid}) did not die")
        self.relay(0)
        self.say("run-local", "all services stopped")

    def _wait_for(self, services: list[Service], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(s.alive() for s in services) and time.monotonic() < deadline:
            self.relay(0.1)
