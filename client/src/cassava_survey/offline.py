"""Diagnosing with no network: the served model's on-device artifact (TensorFlow Lite, see
docs/mobile.md) run on this computer by ai-edge-litert, the photos prepared by the API's own
preprocessing, the answers in the same rows as the server's (source `device`).

`imaging.py` and `probabilities.py` beside this module are links to the API's
(api.service/app/): one definition of the decode, orientation, resize and scaling, and of the
entropy. A model pack, as `cassava-survey get-model` stores it, is a directory holding
`model.tflite` and `model.json` (its SHA-256, size, version, labels, and whether it is a demo).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cassava_survey.api import describe_answer, describe_transport_error

PACK_MODEL, PACK_META = "model.tflite", "model.json"
# The API's defaults (api.service/app/core/config.py): the same photos get the same refusals.
MAX_IMAGE_PIXELS = 50_000_000
DECODE_MEMORY_BYTES = 512 * 1024 * 1024
MIN_IMAGE_SIDE = 32
MIN_PIXEL_SPREAD = 0.015
LOW_CONFIDENCE_THRESHOLD = 0.5
# The API's problem code for each refusal of the preprocessing (api.service/app/errors.py).
PROBLEM_CODES = (
    ("EmptyImage", "empty_image"), ("UnsupportedImageFormat", "unsupported_media_type"),
    ("TruncatedImage", "truncated_image"), ("UndecodableImage", "undecodable_image"),
    ("TooManyPixels", "image_too_large"), ("TooCostlyToDecode", "image_too_costly"),
    ("ImageTooSmall", "image_too_small"), ("BlankImage", "blank_image"))
MAX_MODEL_BYTES = 64 * 1024 * 1024  # the API offers nothing larger (app/on_device.py)


class OfflineError(Exception):
    """The offline model cannot be fetched, stored or used; the message is one line for the
    user."""


@dataclass(frozen=True)
class Meta:
    """What model.json says about the pack's model.tflite."""

    name: str
    version: int
    sha256: str
    bytes: int
    quantization: str
    labels: list[dict[str, str]]
    demo: bool | None = None
    source: str | None = None  # the API it came from

    @classmethod
    def parse(cls, data: Any, where: str) -> Meta:
        try:
            meta = cls(**{key: data[key] for key in ("name", "version", "sha256", "bytes",
                                                     "quantization", "labels")},
                       demo=data.get("demo"), source=data.get("source"))
            if not (isinstance(meta.version, int) and isinstance(meta.bytes, int)
                    and isinstance(meta.sha256, str) and len(meta.sha256) == 64
                    and all(isinstance(x.get("code"), str) and isinstance(x.get("name"), str)
                            for x in meta.labels) and meta.labels):
                raise TypeError
        except (KeyError, TypeError, AttributeError):
            raise OfflineError(f"{where} is not a cassava-survey model description "
                               "(written by `cassava-survey get-model`)") from None
        return meta


@dataclass
class OfflineModel:
    """A verified artifact with its labels; diagnose() answers like the batch endpoint."""

    meta: Meta
    content: bytes
    _interpreter: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        verify(self.content, self.meta.sha256, self.meta.bytes, "the offline model")

    def probabilities(self, data: bytes) -> list[float]:
        """The softmax row for one photo's bytes; raises imaging.ImageRejected."""
        from cassava_survey.imaging import image_to_tensor

        interpreter = self._load()
        feed, fetch = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        _, height, width, _ = feed["shape"]
        tensor = image_to_tensor(data, height=int(height), width=int(width),
                                 max_pixels=MAX_IMAGE_PIXELS,
                                 max_decode_bytes=DECODE_MEMORY_BYTES,
                                 min_short_side=MIN_IMAGE_SIDE, min_spread=MIN_PIXEL_SPREAD)
        interpreter.set_tensor(feed["index"], tensor)
        interpreter.invoke()
        return [float(p) for p in interpreter.get_tensor(fetch["index"])[0]]

    def diagnose(self, data: bytes) -> dict[str, Any]:
        """{"prediction": {...}} or {"problem": {"code", "detail"}}, as in the batch endpoint's
        `results`, for one photo's bytes."""
        from cassava_survey import imaging
        from cassava_survey.probabilities import normalised_entropy

        try:
            row = self.probabilities(data)
        except imaging.ImageRejected as rejected:
            code = next((code for name, code in PROBLEM_CODES
                         if isinstance(rejected, getattr(imaging, name))), "undecodable_image")
            return {"problem": {"code": code, "detail": str(rejected)}}
        if len(row) != len(self.meta.labels):
            raise OfflineError(f"the offline model answers {len(row)} classes but its labels "
                               f"name {len(self.meta.labels)}")
        top = max(range(len(row)), key=lambda index: row[index])  # ties: the first, as the API
        confidence = min(max(row[top], 0.0), 1.0)
        return {"prediction": {
            "prediction": self.meta.labels[top]["name"], "code": self.meta.labels[top]["code"],
            "confidence": confidence, "low_confidence": confidence < LOW_CONFIDENCE_THRESHOLD,
            "entropy": normalised_entropy(row),
            "model": {"name": self.meta.name, "version": self.meta.version}}}

    def _load(self) -> Any:
        if self._interpreter is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                raise OfflineError("offline diagnosis needs ai-edge-litert: "
                                   "pip install 'cassava-survey[offline]'") from None
            try:
                self._interpreter = Interpreter(model_content=self.content)
                self._interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as error:
                raise OfflineError(f"the offline model cannot be loaded: {error}") from None
        return self._interpreter


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def verify(content: bytes, sha256: str, size: int, what: str) -> None:
    if len(content) != size:
        raise OfflineError(f"{what} is {len(content):,} bytes, not the {size:,} announced: "
                           "truncated or not the published file")
    actual = sha256_hex(content)
    if actual != sha256:
        raise OfflineError(f"{what} has SHA-256 {actual}, not the published {sha256}: corrupt")


def load_pack(location: Path) -> OfflineModel:
    """A pack directory, its model.json, or its model.tflite (model.json beside it)."""
    directory = location if location.is_dir() else location.parent
    meta_path, model_path = directory / PACK_META, directory / PACK_MODEL
    if location.is_file() and location.suffix == ".tflite":
        model_path = location
    try:
        meta = Meta.parse(json.loads(meta_path.read_text(encoding="utf-8")), str(meta_path))
        content = model_path.read_bytes()
    except FileNotFoundError as error:
        raise OfflineError(f"no offline model at {location}: {error.filename} is missing "
                           "(run `cassava-survey get-model --api URL` first)") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise OfflineError(f"cannot read the offline model at {location}: {error}") from None
    return OfflineModel(meta, content)


def save_pack(model: OfflineModel, directory: Path) -> None:
    """model.tflite then model.json, each written atomically: a pack whose description is
    present always has its file (and load_pack verifies it anyway)."""
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / PACK_MODEL, model.content)
    _atomic_write(directory / PACK_META,
                  (json.dumps(asdict(model.meta), indent=1) + "\n").encode("utf-8"))


def _atomic_write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


async def fetch(http: httpx.AsyncClient, api: str) -> tuple[Meta, str]:
    """The served version's description from GET /v1/model, and the artifact's full URL."""
    base = api.rstrip("/")
    body = await _get_json(http, f"{base}/v1/model")
    on_device = body.get("on_device") if isinstance(body, Mapping) else None
    if not isinstance(on_device, Mapping):
        version = body.get("version") if isinstance(body, Mapping) else None
        raise OfflineError(f"{base} offers no on-device model for its model version {version} "
                           "(on_device is null): diagnose online, or ask its operator to run "
                           "scripts/make-on-device-model")
    try:
        meta = Meta.parse({
            "name": body["name"], "version": on_device["version"],
            "sha256": on_device["sha256"], "bytes": on_device["bytes"],
            "quantization": on_device["quantization"],
            "labels": [{"code": x["code"], "name": x["name"]} for x in body["labels"]],
            "demo": body.get("demo"), "source": base}, f"{base}/v1/model")
        url = f"{base}{on_device['url']}"
    except (KeyError, TypeError):
        raise OfflineError(f"{base}/v1/model is not the cassava API's model description") \
            from None
    if meta.bytes > MAX_MODEL_BYTES:
        raise OfflineError(f"{url}: {meta.bytes:,} bytes is not an on-device model")
    return meta, url


async def download(http: httpx.AsyncClient, meta: Meta, url: str,
                   deadline: float) -> OfflineModel:
    """GET the artifact (at most the announced size, within `deadline` seconds in all: a server
    that trickles bytes cannot hold the tool forever) and verify it."""
    try:
        async with asyncio.timeout(deadline), http.stream("GET", url) as reply:
            if reply.status_code != 200:
                await reply.aread()
                raise OfflineError(f"{url}: {describe_answer(reply)}")
            content = b""
            async for chunk in reply.aiter_bytes():
                content += chunk
                if len(content) > meta.bytes:
                    raise OfflineError(f"{url}: more than the {meta.bytes:,} bytes announced")
    except httpx.TransportError as error:
        raise OfflineError(describe_transport_error(url, error)) from None
    except TimeoutError:
        raise OfflineError(f"{url}: the download did not finish in {round(deadline, 1):g} s; "
                           "try again (--timeout gives it longer)") from None
    return OfflineModel(meta, content)


def download_deadline(timeout: float, size: int) -> float:
    """The whole download's deadline: the wait for an answer, plus the file at 10 kB/s (a poor
    2G link)."""
    return timeout + size / 10_000


async def _get_json(http: httpx.AsyncClient, url: str) -> Any:
    try:
        reply = await http.get(url)
    except httpx.TransportError as error:
        raise OfflineError(describe_transport_error(url, error)) from None
    if reply.status_code != 200:
        raise OfflineError(f"{url}: {describe_answer(reply)}")
    try:
        return reply.json()
    except ValueError:
        raise OfflineError(f"{url} did not answer JSON: is it the cassava API?") from None


async def fetch_model(api: str, timeout: float, ca_cert: Path | None = None) -> OfflineModel:
    """The served version's artifact from the API, downloaded and verified (kept in memory)."""
    from cassava_survey.api import http_client

    async with http_client(timeout, ca_cert=ca_cert) as http:
        meta, url = await fetch(http, api)
        return await download(http, meta, url, download_deadline(timeout, meta.bytes))


async def get_model(api: str, directory: Path, timeout: float,
                    ca_cert: Path | None = None) -> tuple[Meta, bool]:
    """Store the served version's artifact in directory unless the pack there is already that
    very file; returns (its description, whether it was downloaded)."""
    from cassava_survey.api import http_client

    async with http_client(timeout, ca_cert=ca_cert) as http:
        meta, url = await fetch(http, api)
        try:
            if load_pack(directory).meta.sha256 == meta.sha256:
                return meta, False
        except OfflineError:
            pass  # none yet, another version, or damaged: fetch it
        save_pack(await download(http, meta, url, download_deadline(timeout, meta.bytes)),
                  directory)
    return meta, True
