"""Publishing into a TF Serving model repository (<base>/<name>/<version>/) without ever exposing
a half-written version: build in a hidden temporary directory beside the versions, fsync, rename.

A polling server (ours or TF Serving) only considers all-digit directory names, so the staging
directory (".tmp-...") is invisible to it, and rename(2) makes the finished version appear at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from app.labels import LabelsError, check_labels


class PublishError(Exception):
    """A version could not be published (the message says why, for the command line)."""


class VersionExistsError(PublishError):
    pass


def versions(model_dir: Path) -> list[int]:
    """Version numbers present under a model directory (all-digit subdirectories), ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.name.isascii() and p.name.isdigit() and p.is_dir())


def next_version(model_dir: Path) -> int:
    present = versions(model_dir)
    return present[-1] + 1 if present else 1


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under root, so a crash cannot leave a renamed but empty
    version behind."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_version(model_dir: Path, write: Callable[[Path], None],
                    version: int | None = None) -> Path:
    """Call write(path) to create a SavedModel at a fresh path, then move it to
    model_dir/<version> atomically. version=None takes the next number. Returns the version dir.

    Refuses to replace an existing version. On any failure the staging directory is removed and
    no version directory appears.
    """
    if version is not None and version < 1:
        raise PublishError(f"version must be a positive integer, got {version}")
    model_dir.mkdir(parents=True, exist_ok=True)
    number = next_version(model_dir) if version is None else version
    final = model_dir / str(number)
    if final.exists():
        raise VersionExistsError(f"version {number} already exists at {final}; "
                                 "versions are immutable: choose another --version or omit it")
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{number}-", dir=model_dir))
    try:
        built = staging / str(number)
        write(built)
        if not built.is_dir():
            raise PublishError(f"nothing was written for version {number}")
        _fsync_tree(built)
        if final.exists():  # another writer took the number meanwhile
            raise VersionExistsError(f"version {number} appeared at {final} while writing")
        os.rename(built, final)
        _fsync_dir(model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def write_atomically(target: Path, content: bytes) -> Path:
    """Write bytes to target atomically (temporary file beside it, fsync, os.replace): readers
    see the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the API (another user) reads it
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def write_json(target: Path, data: object) -> Path:
    """Write JSON to target atomically (write_atomically)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return write_atomically(target, text.encode("utf-8"))


def write_labels(model_dir: Path, labels: list[dict]) -> Path:
    """Write <model_dir>/labels.json atomically (the API reads it beside the versions); only a
    list the API accepts."""
    _check_labels(labels, "labels")
    return write_json(model_dir / "labels.json", labels)


def read_labels(path: Path) -> list[dict]:
    """A labels file the API accepts (app.labels: non-empty list of objects with non-blank
    string "code" and "name", codes unique; extra fields kept), in class-index order."""
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishError(f"cannot read labels {path}: {exc}") from exc
    _check_labels(labels, str(path))
    return labels


def _check_labels(labels: object, source: str) -> None:
    try:
        check_labels(labels, source)
    except LabelsError as error:
        raise PublishError(str(error)) from None
