"""Which versions of each model are served: TF Serving's file-system source and version policy.

Every --file_system_poll_wait_seconds the model's base path is scanned; the version policy picks the
aspired versions; new ones are loaded one at a time, and an old version is unloaded only once an
aspired version is AVAILABLE (TF Serving's availability-preserving transition), so a rollout never
fails a request. A version that fails to load stays in GetModelStatus as END with its error while
the previous version keeps serving.

The registry applies a whole ModelServerConfig at once (`apply`): models added, removed or
re-configured, and the version labels swapped atomically, with TF Serving's rule that a label may
only name a version that is AVAILABLE (or, with --allow_version_labels_for_unavailable_models, a
label that is new or unchanged). A config that breaks a rule is refused as a whole: the last good
one stays in force and nothing unloads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from model_server import repository
from model_server.config import ConfigError, ModelConfig
from model_server.errors import ServingError, from_exception, invalid_argument, not_found
from model_server.logs import servable_id

if TYPE_CHECKING:  # the servable module loads TensorFlow; the manager itself does not
    from model_server.servable import Servable

log = logging.getLogger("model_server")

# tensorflow.serving.ModelVersionStatus.State
START, LOADING, AVAILABLE, UNLOADING, END = 10, 20, 30, 40, 50

Loader = Callable[[str, int, Path], "Servable"]  # (name, version, path) -> Servable

# How long an unload waits for the requests still holding a version before it frees the version
# anyway (their inference is cancelled): a hung call must not keep the poller from loading the
# next version forever. TF Serving has no flag for it; --servable_unload_timeout_seconds sets it.
DEFAULT_UNLOAD_TIMEOUT_SECONDS = 30.0


@dataclass
class VersionStatus:
    version: int
    path: Path
    state: int = START
    error: ServingError | None = None
    servable: Servable | None = None  # while AVAILABLE
    gone: bool = False  # its directory disappeared after it ended


@dataclass(frozen=True)
class Spec:
    """A request's ModelSpec: a version, a version label, or neither (= the latest)."""

    name: str
    version: int | None = None
    label: str | None = None  # the label the version was resolved from, if any

    def describe(self) -> str:
        """As TF Serving's ServableRequest::DebugString."""
        if self.version is None:
            return f"Latest({self.name})"
        return f"Specific({self.name}, {self.version})"


class ModelVersions:
    """The versions of one model and their states; polled by its own thread."""

    def __init__(self, config: ModelConfig, loader: Loader, stop: threading.Event,
                 max_load_retries: int = 0, load_retry_interval: float = 0.0,
                 unload_timeout: float = DEFAULT_UNLOAD_TIMEOUT_SECONDS) -> None:
        self.config = config
        self._load = loader
        self._stop = stop
        self._unload_timeout = unload_timeout
        self._wake = threading.Event()  # a new config: poll now, not at the next interval
        self._retired = False  # removed from the config: unload everything and stop polling
        self._max_load_retries = max_load_retries
        self._load_retry_interval = load_retry_interval
        self._lock = threading.Lock()
        self._versions: dict[int, VersionStatus] = {}
        # Copy-on-write snapshot of AVAILABLE servables, newest first, read without the lock.
        self._available: dict[int, Servable] = {}
        self._last_scan_note = ""

    @property
    def name(self) -> str:
        return self.config.name

    # -- the request path -------------------------------------------------------------------
    def statuses(self) -> list[VersionStatus]:
        with self._lock:
            return [self._versions[v] for v in sorted(self._versions, reverse=True)]

    def _pick(self, spec: Spec):
        available = self._available
        if spec.version is None:
            if available:
                return next(iter(available.values()))
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"Servable not found for request: {spec.describe()}: "
                               f"no version of model {spec.name} is available yet")
        servable = available.get(spec.version)
        if servable is not None:
            return servable
        status = self._versions.get(spec.version)
        if status is not None and status.state in (START, LOADING):
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"Servable not found for request: {spec.describe()}: "
                               f"version {spec.version} is still loading")
        raise not_found(f"Servable not found for request: {spec.describe()}")

    @contextmanager
    def hold(self, spec: Spec) -> Iterator[Servable]:
        """The servable a request is for, kept loaded until the request is done."""
        for _ in range(100):  # an unload between pick and acquire: pick again
            servable = self._pick(spec)
            if servable.acquire():
                break
        else:  # pragma: no cover - would need 100 unloads racing one request
            raise ServingError(grpc.StatusCode.UNAVAILABLE, "model is being unloaded")
        try:
            yield servable
        finally:
            servable.release()

    def available_versions(self) -> set[int]:
        return set(self._available)

    def reconfigure(self, config: ModelConfig) -> None:
        """A new policy or base path, applied by the next poll (which runs at once)."""
        self.config = config
        self._wake.set()

    def retire(self) -> None:
        """The model left the config: its poller unloads every version and ends."""
        self._retired = True
        self._wake.set()

    # -- the polling side --------------------------------------------------------------------
    def _note(self, level: int, message: str) -> None:
        """Log a scan result once, not on every poll."""
        if message != self._last_scan_note:
            log.log(level, message)
            self._last_scan_note = message

    def poll_once(self) -> None:
        base = self.config.base_path
        on_disk = repository.scan_versions(base)
        if on_disk is None:
            self._note(logging.ERROR, f"File system storage path source: Could not find base path "
                                      f"{base} for servable {self.name}")
            on_disk = {}
        elif not on_disk:
            self._note(logging.WARNING,
                       f"No versions of servable {self.name} found under base path {base}. Did you "
                       "forget to name your leaf directory as a number (eg. '/1/')?")
        else:
            self._note(logging.DEBUG, "")
        for version, status in self._versions.items():
            if version not in on_disk and status.state == END:
                status.gone = True  # a failed version is tried again if its directory comes back
        aspired = self.config.policy.select(list(on_disk))
        for version in aspired:  # newest first: the one that will serve
            if self._stop.is_set():
                return
            known = self._versions.get(version)
            # New, or aspired again after an unload or after its failed directory was replaced.
            if known is None or (known.state == END and (known.error is None or known.gone)):
                self._load_version(version, on_disk[version])
        self._unload_unaspired(set(aspired), set(on_disk))

    def _set_available(self) -> None:
        self._available = {v: s.servable for v, s in sorted(self._versions.items(), reverse=True)
                           if s.state == AVAILABLE and s.servable is not None}

    def _load_version(self, version: int, path: Path) -> None:
        sid = servable_id(self.name, version)
        status = VersionStatus(version, path, LOADING)
        with self._lock:
            self._versions[version] = status
        log.info(f"Approving load for servable version {sid}")
        log.info(f"Loading servable version {sid}")
        attempt = 0
        while True:
            try:
                servable = self._load(self.name, version, path)
                break
            except Exception as error:  # every load failure is reported the same way
                failure = from_exception(error)
            if attempt >= self._max_load_retries or self._stop.is_set():
                log.error(f"Loading servable: {sid} failed: {failure}")
                with self._lock:
                    status.state, status.error = END, failure
                return
            attempt += 1
            log.info(f"Retrying load of servable {sid} ({attempt} of {self._max_load_retries}) "
                     f"after: {failure}")
            if self._stop.wait(self._load_retry_interval):
                return
        with self._lock:
            status.state, status.servable = AVAILABLE, servable
            self._set_available()
        log.info(f"Successfully loaded servable version {sid}")

    def _unload_unaspired(self, aspired: set[int], on_disk: set[int]) -> None:
        aspired_available = any(self._versions[v].state == AVAILABLE
                                for v in aspired if v in self._versions)
        for version, status in list(self._versions.items()):
            if status.state != AVAILABLE or version in aspired:
                continue
            # Availability first: keep an old version until an aspired one serves, unless its
            # files are gone (TF Serving unloads a version whose directory disappeared).
            if aspired_available or version not in on_disk:
                self._unload(status)

    def _unload(self, status: VersionStatus) -> None:
        sid = servable_id(self.name, status.version)
        with self._lock:
            status.state = UNLOADING
            self._set_available()  # new requests stop seeing it
        log.info(f"Quiescing servable version {sid}")
        log.info(f"Unloading servable version {sid}")
        assert status.servable is not None  # AVAILABLE
        if not status.servable.unload(self._unload_timeout):
            log.warning(f"Unloading servable version {sid}: requests still running after "
                        f"{self._unload_timeout:g} s are cancelled")
        with self._lock:
            status.state, status.servable = END, None
        log.info(f"Done unloading servable version {sid}")

    def unload_all(self) -> None:
        """Every available version, when the model leaves the config."""
        for status in list(self._versions.values()):
            if status.state == AVAILABLE:
                self._unload(status)

    def run(self, poll_wait_seconds: float) -> None:
        """The polling loop: poll every poll_wait_seconds; with 0, once and again only when the
        config changes; never if negative. Ends (unloading everything) when the model is retired."""
        if poll_wait_seconds < 0:
            return
        while not self._stop.is_set():
            if self._retired:
                self.unload_all()
                return
            try:
                self.poll_once()
            except Exception:  # the poller must survive anything the file system does
                log.exception(f"Polling model {self.name} failed")
            self._wake.wait(poll_wait_seconds if poll_wait_seconds > 0 else None)
            self._wake.clear()


class ModelRegistry:
    """All configured models, by name, and their version labels; what the handlers ask."""

    def __init__(self, models: list[ModelVersions] | None = None,
                 labels: dict[str, dict[str, int]] | None = None) -> None:
        self.models = {m.name: m for m in models or ()}
        # model -> label -> version; replaced as a whole, read without a lock.
        self.labels: dict[str, dict[str, int]] = labels if labels is not None else {
            m.name: dict(m.config.version_labels) for m in models or ()}
        self._apply_lock = threading.Lock()

    def model(self, name: str, spec_for_error: Spec | None = None) -> ModelVersions:
        try:
            return self.models[name]
        except KeyError:
            spec = spec_for_error or Spec(name)
            raise not_found(f"Servable not found for request: {spec.describe()}") from None

    def resolve_label(self, name: str, label: str) -> int:
        """ServerCore::GetModelVersionForLabel."""
        version = self.labels.get(name, {}).get(label)
        if version is None:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return version

    def spec(self, name: str, version: int | None, label: str | None) -> Spec:
        """A request's ModelSpec, its version label resolved from the current label map."""
        if label:
            return Spec(name, self.resolve_label(name, label), label)
        return Spec(name, version)

    @contextmanager
    def hold(self, spec: Spec) -> Iterator[Servable]:
        model = self.model(spec.name, spec)
        try:
            held = model.hold(spec)
            servable = held.__enter__()
        except ServingError:
            # A label moved (promote, rollback) between resolving it and holding its version,
            # and the old version is already going: the label's new version answers instead.
            current = self.spec(spec.name, None, spec.label) if spec.label else spec
            if current == spec:
                raise
            held = model.hold(current)
            servable = held.__enter__()
        try:
            yield servable
        finally:
            held.__exit__(None, None, None)

    def status(self, name: str, version: int | None) -> list[VersionStatus]:
        """GetModelStatus's versions, with TF Serving's NOT_FOUND messages."""
        model = self.models.get(name)
        statuses = [s for s in model.statuses() if s.state != START] if model else []
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise not_found(f"Could not find version {version} of model {name}")
        elif not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        return statuses

    # -- configuration --------------------------------------------------------------------------
    def check(self, configs: list[ModelConfig], allow_unavailable_labels: bool
              ) -> dict[str, dict[str, int]]:
        """The label map a config would give, or ConfigError if it must be refused.

        TF Serving's UpdateModelVersionLabelMap: a label must name an AVAILABLE version; with
        --allow_version_labels_for_unavailable_models, a label that is new or keeps its version
        may name one that is not loaded yet. Stricter than TF Serving (which accepts them and
        serves nothing): a `specific` version or a label naming a version that is not on disk,
        or that the version policy will not serve, refuses the whole config.
        """
        labels: dict[str, dict[str, int]] = {}
        for config in configs:
            on_disk = repository.scan_versions(config.base_path) or {}
            if config.policy.kind == "specific":
                missing = sorted(config.policy.versions - set(on_disk))
                if missing:
                    raise ConfigError(
                        f"model {config.name}: model_version_policy names version(s) "
                        f"{', '.join(map(str, missing))}, not found under {config.base_path}")
            aspired = set(config.policy.select(list(on_disk)))
            model = self.models.get(config.name)
            available = model.available_versions() if model else set()
            for label, version in sorted(config.version_labels.items()):
                if version not in aspired:
                    raise ConfigError(
                        f"model {config.name}: label {label} names version {version}, which is "
                        f"not under {config.base_path} or not served by its version policy "
                        f"({config.policy.describe()})")
                existing = self.labels.get(config.name, {}).get(label)
                allowed = allow_unavailable_labels and existing in (None, version)
                if not allowed and version not in available:
                    raise ConfigError(
                        f"FAILED_PRECONDITION: Request to assign label to version {version} of "
                        f"model {config.name}, which is not currently available for inference")
            labels[config.name] = dict(config.version_labels)
        return labels

    def apply(self, configs: list[ModelConfig], make: Callable[[ModelConfig], ModelVersions],
              start: Callable[[ModelVersions], None], allow_unavailable_labels: bool) -> None:
        """Make `configs` the served configuration, or raise ConfigError and change nothing."""
        with self._apply_lock:
            labels = self.check(configs, allow_unavailable_labels)
            # Labels first: a version a label leaves may be unloaded as soon as a poller wakes.
            self.labels = labels
            wanted = {config.name: config for config in configs}
            for name in [n for n in self.models if n not in wanted]:
                log.info(f"Removing model {name}: no longer in the config")
                models = dict(self.models)
                models.pop(name).retire()
                self.models = models
            for name, config in wanted.items():
                model = self.models.get(name)
                if model is None:
                    log.info(f"(Re-)adding model: {name} (base path {config.base_path}, "
                             f"version policy {config.policy.describe()})")
                    model = make(config)
                    self.models = {**self.models, name: model}
                    start(model)
                elif model.config != config:
                    log.info(f"Updating model: {name} (base path {config.base_path}, version "
                             f"policy {config.policy.describe()}, labels "
                             f"{dict(sorted(config.version_labels.items()))})")
                    model.reconfigure(config)
