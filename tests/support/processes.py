"""Start real servers as child processes for tests, and stop them without leaving orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.waiting import wait_until


class ManagedProcess:
    """A child process in its own session, its output in a log file, stopped with its children."""

    def __init__(self, name: str, argv: Sequence[str | os.PathLike], log_dir: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until it holds; fail with the process log if it dies or times out."""
        def exited() -> str | None:
            if self.alive():
                return None
            return f"{self.name} exited ({self.proc.returncode}):\n{self.log()[-4000:]}"

        try:  # any exception from `ready` means "not ready yet", whatever the reason
            wait_until(ready, timeout, what, ignore=(Exception,), gave_up=exited)
        except TimeoutError as error:
            raise TimeoutError(f"{self.name}: {error}:\n{self.log()[-4000:]}") from None

    def signal(self, signum: int) -> None:
        if self.alive():
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole process group if it lingers."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()
        return self.proc.returncode
