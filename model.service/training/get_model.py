"""scripts/get-model: fetch a catalogued model (catalogue.json), check its size and SHA-256, and
install it as the next version of a model repository with its labels and model card.

Nothing reaches the repository before the file is verified; the download lives in a private
temporary directory that is removed whatever happens; the version is published atomically by the
same writer as scripts/convert-model, so a running model server switches to it by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from training.repository import PublishError, read_labels, write_json

CATALOGUE = Path(__file__).with_name("catalogue.json")
REPO_ROOT = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024
# The whole download, however steadily bytes come (--deadline): the article's 4 MB file takes
# seconds; 10 minutes carry it at 7 KB/s, the slowest line worth waiting on.
DEFAULT_DEADLINE = 600.0
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml)", re.IGNORECASE)


class GetModelError(Exception):
    """The model could not be fetched or installed (the message says why, for the user)."""


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: where the file is, what it must be, and what to say about it."""

    key: str
    url: str
    filename: str
    size: int
    sha256: str
    labels: list[dict]
    card: dict

    @classmethod
    def from_catalogue(cls, key: str, data: dict) -> Entry:
        source = {"url": data["url"], "repository": data["repository"], "path": data["path"],
                  "commit": data["commit"], "size": data["size"], "sha256": data["sha256"]}
        card = {**data["card"], "demo": False, "licence": data["licence"],
                "attribution": data["attribution"], "source": source}
        return cls(key, data["url"], Path(data["path"]).name, data["size"], data["sha256"].lower(),
                   data["labels"], card)


def load_catalogue(path: Path = CATALOGUE) -> dict[str, dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def default_repository(env: dict[str, str]) -> tuple[Path, str]:
    """MODEL_BASE_PATH and MODEL_NAME the way scripts/run-local reads them (a relative base path
    is relative to the current directory), else model.service/models and cassava."""
    base = Path(env["MODEL_BASE_PATH"]) if env.get("MODEL_BASE_PATH") \
        else REPO_ROOT / "model.service" / "models"
    return base, env.get("MODEL_NAME") or "cassava"


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def looks_like_html(head: bytes) -> bool:
    return bool(_HTML_START.match(head[:512]))


def _progress(console: Console) -> Progress:
    # A plain-text column: the console has markup off (file names are not markup), so rich's
    # default "[progress.description]..." string column would print its style tag literally.
    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=console)


def _copy_counted(chunks, out: BinaryIO, entry: Entry, what: str, digest, progress: Progress,
                  task, past_deadline=lambda: False) -> tuple[int, bytes]:
    """Write chunks to out, hashing and counting them; stop as soon as there are too many, or
    when `past_deadline()` says the whole download has taken too long."""
    received, head = 0, b""
    for chunk in chunks:
        if past_deadline():
            raise DeadlineExceeded(received)
        received += len(chunk)
        if received > entry.size:
            raise GetModelError(f"{what} is larger than the {entry.size:,} bytes the catalogue "
                                f"gives for {entry.key!r}: not the catalogued file")
        if len(head) < 512:
            head += chunk[:512 - len(head)]
        digest.update(chunk)
        out.write(chunk)
        progress.update(task, completed=received)
    return received, head


class DeadlineExceeded(Exception):
    """The download as a whole took longer than --deadline (however steadily bytes came)."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


def download(url: str, target: Path, entry: Entry, timeout: float, console: Console,
             deadline: float = DEFAULT_DEADLINE) -> tuple[int, str, bytes]:
    """GET url into target; returns (bytes received, SHA-256 hex, first bytes). `timeout` bounds
    each wait for data, `deadline` the whole download: a server trickling a byte every few
    seconds never trips the first (issue 20). Errors name the URL that failed (after a
    redirect, the one redirected to); a redirect to another host is reported."""
    digest = hashlib.sha256()
    give_up_at = time.monotonic() + deadline
    current = url
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True) as client, \
                client.stream("GET", url, headers={"Accept": "application/octet-stream"}) as reply:
            current = str(reply.url)
            if reply.history and httpx.URL(url).host != reply.url.host:
                console.print(f"get-model: {url} redirected to {current} (another host)")
            url = current
            if reply.status_code != 200:
                raise GetModelError(f"{url}: the server answered HTTP {reply.status_code} "
                                    f"{reply.reason_phrase}, not the model file")
            kind = reply.headers.get("content-type", "")
            if "html" in kind.lower():
                raise GetModelError(f"{url}: the server sent a web page ({kind}), not the model "
                                    "file (a wrong URL, or a network that wants a login?)")
            announced = reply.headers.get("content-length")
            if announced is not None and announced.isdigit() and int(announced) != entry.size:
                raise GetModelError(f"{url}: the server announces {int(announced):,} bytes, but "
                                    f"{entry.key!r} is {entry.size:,} bytes: not the catalogued "
                                    "file")
            with open(target, "wb") as out, _progress(console) as progress:
                task = progress.add_task(f"{entry.filename}", total=entry.size)
                # iter_bytes() without a size: each piece as it arrives, so the deadline is
                # checked while a trickle is still filling a chunk.
                received, head = _copy_counted(
                    reply.iter_bytes(), out, entry, "the download", digest, progress, task,
                    past_deadline=lambda: time.monotonic() > give_up_at)
    except DeadlineExceeded as exc:
        raise GetModelError(f"{current}: {exc.received:,} of {entry.size:,} bytes after "
                            f"{deadline:g} s; giving up (--deadline changes it)") from None
    except httpx.HTTPError as exc:
        failed = _request_url(exc) or current
        raise _download_error(failed, exc, timeout) from None
    return received, digest.hexdigest(), head


def _request_url(error: httpx.HTTPError) -> str | None:
    try:
        return str(error.request.url)
    except RuntimeError:  # no request attached
        return None


def _download_error(url: str, exc: httpx.HTTPError, timeout: float) -> GetModelError:
    """What went wrong with `url`, in words."""
    if isinstance(exc, httpx.ConnectError):
        return GetModelError(f"cannot connect to {url}: {exc or 'connection failed'}. "
                             "No network? Download the file elsewhere and use --file.")
    if isinstance(exc, httpx.TimeoutException):
        return GetModelError(f"{url}: no data for {timeout:g} s; giving up (--timeout "
                             "changes it)")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return GetModelError(f"{url}: the download broke off ({exc}); the file is truncated, "
                             "try again")
    return GetModelError(f"{url}: {type(exc).__name__}: {exc}")


def copy_file(source: Path, target: Path, entry: Entry, console: Console
              ) -> tuple[int, str, bytes]:
    """Copy a file already on disk (hashing what is copied, so the checked bytes are the ones
    converted); returns (size, SHA-256 hex, first bytes)."""
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as stream, open(target, "wb") as out, \
                _progress(console) as progress:
            task = progress.add_task(f"{source.name}", total=entry.size)
            received, head = _copy_counted(iter(lambda: stream.read(CHUNK), b""), out, entry,
                                           str(source), digest, progress, task)
    except OSError as exc:
        raise GetModelError(f"cannot read {source}: {exc.strerror or exc}") from None
    return received, digest.hexdigest(), head


def verify(what: str, entry: Entry, size: int, sha256: str, head: bytes) -> None:
    """Refuse anything but the catalogued bytes, with the likeliest reason."""
    if looks_like_html(head):
        raise GetModelError(f"{what} is an HTML page, not the model file "
                            "(a wrong URL, an error page, or a network that wants a login?)")
    if size < entry.size:
        raise GetModelError(f"{what} is truncated: {size:,} of {entry.size:,} bytes")
    if sha256 != entry.sha256:
        raise GetModelError(f"{what} has SHA-256 {sha256}, but {entry.key!r} is {entry.sha256}: "
                            "the file is corrupt or not the catalogued one")


def _same_classes(model_dir: Path, labels: list[dict]) -> bool:
    """Whether model_dir's labels.json already names these classes, in this order."""
    try:
        present = read_labels(model_dir / "labels.json")
    except PublishError:
        return False
    return [(x["code"], x["name"]) for x in present] == [(x["code"], x["name"]) for x in labels]


def install(entry: Entry, model_file: Path, model_dir: Path, workdir: Path,
            photos: list[Path] | None = None, quantization: str | None = None,
            log=print) -> Path:
    """Convert the verified file into the next version of model_dir with labels, card and
    on-device artifact. A labels.json naming the same classes stays (it may say more, e.g. the
    demo's descriptions)."""
    from training.convert import convert
    from training.on_device import DEFAULT_QUANTIZATION

    labels = None if _same_classes(model_dir, entry.labels) else \
        write_json(workdir / "labels.json", entry.labels)
    return convert(model_file, model_dir, labels, card=entry.card, photos=photos,
                   quantization=quantization or DEFAULT_QUANTIZATION, log=log)


@contextlib.contextmanager
def _temporary_files_in(path: str) -> Iterator[None]:
    """Point tempfile (and so TensorFlow's own scratch files, e.g. AutoGraph's modules) into our
    private directory, which is removed whatever happens."""
    saved = tempfile.tempdir
    tempfile.tempdir = path
    try:
        yield
    finally:
        tempfile.tempdir = saved


def get_model(entry: Entry, model_dir: Path, *, url: str | None, file: Path | None,
              timeout: float, console: Console, photos: list[Path] | None = None,
              quantization: str | None = None, deadline: float = DEFAULT_DEADLINE) -> Path:
    """Fetch (or copy), verify, install; returns the new version directory."""
    with tempfile.TemporaryDirectory(prefix="get-model-") as tmp, _temporary_files_in(tmp):
        workdir = Path(tmp)
        model_file = workdir / entry.filename
        if file is not None:
            what = str(file)
            size, sha256, head = copy_file(file, model_file, entry, console)
        else:
            what = url or entry.url
            console.print(f"get-model: downloading {entry.key!r} ({_megabytes(entry.size)}) "
                          f"from {what}")
            size, sha256, head = download(what, model_file, entry, timeout, console,
                                          deadline)
        verify(what, entry, size, sha256, head)
        console.print(f"get-model: {entry.filename}: {size:,} bytes, SHA-256 {sha256} (verified)")
        console.print(f"get-model: converting into {model_dir} ...")
        return install(entry, model_file, model_dir, workdir, photos, quantization,
                       log=lambda line: console.print(f"get-model: {line}"))


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    catalogue = load_catalogue()
    base, name = default_repository(dict(os.environ) if env is None else env)
    parser = argparse.ArgumentParser(
        prog="get-model",
        description="Download a catalogued model, verify its size and SHA-256, and install it as "
                    "the next version of a model repository (with labels and model card).")
    parser.add_argument("model", choices=sorted(catalogue), help="catalogue entry")
    parser.add_argument("--repository", type=Path, default=base,
                        help=f"model repository (default: {base}, from $MODEL_BASE_PATH "
                             "or else model.service/models)")
    parser.add_argument("--name", default=name,
                        help=f"model name (default: {name}, from $MODEL_NAME or else cassava)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--file", type=Path, help="install from this file instead of downloading")
    source.add_argument("--url", help="download from this URL instead (a mirror)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds without data before the download is abandoned (default 30)")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help="seconds the whole download may take, however steadily data comes "
                             f"(default {DEFAULT_DEADLINE:g})")
    from training.convert import add_on_device_arguments

    add_on_device_arguments(parser)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        parser.error(f"--name {args.name!r}: use letters, digits, '_', '-', '.'")
    if args.timeout <= 0 or args.deadline <= 0:
        parser.error("--timeout and --deadline must be positive seconds")

    console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)
    entry = Entry.from_catalogue(args.model, catalogue[args.model])
    try:
        version_dir = get_model(entry, args.repository / args.name, url=args.url, file=args.file,
                                timeout=args.timeout, deadline=args.deadline,
                                console=console, photos=args.photos,
                                quantization=args.quantization)
    except (GetModelError, PublishError) as exc:
        console.print(f"get-model: error: {exc}")
        console.print("get-model: nothing was installed")
        return 1
    except KeyboardInterrupt:
        console.print("get-model: interrupted; nothing was installed")
        return 130
    print(f"get-model: installed {entry.key!r} as {version_dir}")
    print(f"get-model: a running model server serves version {version_dir.name} within seconds")
    if int(version_dir.name) > 1:
        print(f"get-model: to serve the previous version again, remove {version_dir} "
              "(docs/model-card.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
