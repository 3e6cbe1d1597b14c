"""--model_config_file_poll_wait_seconds: re-read the model config file and apply it.

As TF Serving's PollFilesystemAndReloadConfig: a file that cannot be read or parsed, or a config
ServerCore refuses (a label on a version that is not available, ...), is logged and the last good
config stays in force; nothing unloads. Unlike TF Serving, each refused config is also counted
(monitoring.CONFIG_RELOAD_FAILURES) so that an alert can fire; the same refused file is tried again
on every poll (a label may become valid once its version loads) but logged and counted once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from model_server import config, monitoring
from model_server.manager import ModelRegistry, ModelVersions

log = logging.getLogger("model_server")


class ConfigReloader:
    def __init__(self, path: Path, registry: ModelRegistry,
                 make: Callable[[config.ModelConfig], ModelVersions],
                 start: Callable[[ModelVersions], None], allow_unavailable_labels: bool) -> None:
        self.path = path
        self._registry = registry
        self._make = make
        self._start = start
        self._allow_unavailable_labels = allow_unavailable_labels
        self._applied_text: str | None = None
        self._last_failure: tuple[str, str] | None = None  # (file text, error) last refused

    def reload_once(self) -> bool:
        """Apply the file if it changed; False if it was refused."""
        try:
            text = self.path.read_text()
        except OSError as error:
            return self._refused("", f"cannot read --model_config_file {self.path}: "
                                     f"{error.strerror}")
        if text == self._applied_text:
            self._last_failure = None  # back to the config in force: a refusal counts again
            return True
        try:
            models = config.parse_model_config_list(text)
            self._registry.apply(models, self._make, self._start, self._allow_unavailable_labels)
        except config.ConfigError as error:
            return self._refused(text, str(error))
        if self._applied_text is not None or self._last_failure is not None:
            log.info(f"Reloaded model config from {self.path}")
        self._applied_text, self._last_failure = text, None
        return True

    def _refused(self, text: str, error: str) -> bool:
        if self._last_failure != (text, error):
            self._last_failure = (text, error)
            monitoring.CONFIG_RELOAD_FAILURES.inc()
            log.error(f"Failed to reload the model config from {self.path}; the last good config "
                      f"stays in force: {error}")
        return False

    def run(self, poll_wait_seconds: float, stop: threading.Event) -> None:
        while not stop.wait(poll_wait_seconds):
            try:
                self.reload_once()
            except Exception:  # the poller must survive anything the file system does
                log.exception("Reloading the model config failed")
