"""The on-device artifact of a version: the TFLite file its card names, checked against the card.

The publisher (model.service/training/on_device.py) writes `<model dir>/<version>/<file>` and
records its SHA-256, size and quantisation in that version's card. The API offers a file only when
the bytes on disk are the ones the card describes: a missing, truncated or altered file (or one
the card does not describe) means no on-device model for that version, logged, never an error
for the client.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from app.model_card import ModelCard

log = logging.getLogger(__name__)

# A phone downloads it on a slow network: anything larger is not a mobile model but a mistake.
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class OnDeviceArtifact:
    """A verified artifact: where it is and what the card says it is."""

    version: int
    path: Path
    sha256: str
    size: int
    quantization: str

    @property
    def url(self) -> str:
        """The file's route, relative to the API root (the page prefixes /api)."""
        return artifact_url(self.version, self.sha256)


_reported: set[str] = set()


def _report(message: str, *args: object) -> None:
    """Log an unusable artifact as an error once per process and problem (GET /v1/model asks on
    every call; a deployment without the model repository, e.g. Swarm's configs, would repeat
    it forever)."""
    text = message % args
    if text not in _reported and len(_reported) < 256:
        _reported.add(text)
        log.error(text)


def artifact_url(version: int, sha256: str) -> str:
    return f"/v1/model/versions/{version}/on-device/{sha256}.tflite"


@lru_cache(maxsize=16)
def _sha256_of(path: str, _inode: int, _size: int, _mtime_ns: int) -> str:
    """The file's SHA-256, remembered while the file (inode, size, mtime) stays the same."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_artifact(model_dir: Path, version: int, card: ModelCard | None
                  ) -> OnDeviceArtifact | None:
    """The version's artifact if its card names one and the file on disk matches it, else None
    (logged as an error when the card names a file that is missing or not the one described)."""
    entry = card.on_device if card is not None else None
    if entry is None:
        return None
    version_dir = (model_dir / str(version)).resolve()
    path = (version_dir / entry.file).resolve()
    if not path.is_relative_to(version_dir):
        _report("on-device model of version %d: %r is outside the version directory",
                version, entry.file)
        return None
    try:
        stat = path.stat()
        if stat.st_size != entry.bytes:
            _report("on-device model %s is %d bytes, its card says %d: not offered",
                    path, stat.st_size, entry.bytes)
            return None
        if stat.st_size > MAX_ARTIFACT_BYTES:
            _report("on-device model %s is %d bytes (over %d): not offered",
                    path, stat.st_size, MAX_ARTIFACT_BYTES)
            return None
        sha256 = _sha256_of(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError as error:
        _report("on-device model of version %d unreadable: %s", version, error)
        return None
    if sha256 != entry.sha256:
        _report("on-device model %s has SHA-256 %s, its card says %s: not offered",
                path, sha256, entry.sha256)
        return None
    return OnDeviceArtifact(version, path, sha256, stat.st_size, entry.quantization)


def read_verified(artifact: OnDeviceArtifact) -> bytes | None:
    """The artifact's bytes if they still hash to its SHA-256 (the file may have been replaced
    since it was found), else None (logged)."""
    try:
        with open(artifact.path, "rb") as stream:
            content = stream.read(MAX_ARTIFACT_BYTES + 1)
    except OSError as error:
        log.error("on-device model %s unreadable: %s", artifact.path, error)
        return None
    if hashlib.sha256(content).hexdigest() != artifact.sha256:
        log.error("on-device model %s changed on disk: not its card's %s", artifact.path,
                  artifact.sha256)
        return None
    return content
