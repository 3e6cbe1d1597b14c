"""The cassava API over HTTP: POST /v1/predict/images with retries, and *.localhost names
resolved to loopback inside the client."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from cassava_survey.photos import Photo
from cassava_survey.retry import RETRY_STATUSES, backoff_delay, parse_retry_after

BATCH_PATH = "/v1/predict/images"
LOOPBACK = "127.0.0.1"


_TEXT = (str, type(None))
_NUMBER = (int, float, type(None))


def is_batch_result(result: object) -> bool:
    """Whether one entry of a batch answer has the shape rows are built from (schemas.py's
    BatchPrediction or BatchProblem, the fields the survey reads): a server answering
    `[null, null]` or `{"prediction": 5}` is named, not a traceback (issue 20)."""
    if not isinstance(result, dict):
        return False
    prediction, problem = result.get("prediction"), result.get("problem")
    if isinstance(prediction, dict):
        model = prediction.get("model", {})
        return (isinstance(model, dict)
                and all(isinstance(prediction.get(key), _TEXT) for key in ("prediction", "code"))
                and all(isinstance(prediction.get(key), _NUMBER)
                        and not isinstance(prediction.get(key), bool)
                        for key in ("confidence", "entropy"))
                and isinstance(prediction.get("low_confidence"), (bool, type(None)))
                and isinstance(model.get("name"), _TEXT)
                and isinstance(model.get("version"), (int, type(None)))
                and not isinstance(model.get("version"), bool))
    return (prediction is None and isinstance(problem, dict)
            and all(isinstance(problem.get(key), _TEXT) for key in ("code", "detail")))


class ApiError(Exception):
    """The run cannot go on: the server is unreachable, or it gave an answer that asking again
    will not change (a wrong URL, a refused request). The message is for the user."""


def is_loopback_name(host: str) -> bool:
    """`localhost` and every `*.localhost` name (RFC 6761 §6.3: they resolve to loopback, as in
    browsers and curl; glibc's resolver does not know that)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


class LoopbackTransport(httpx.AsyncBaseTransport):
    """Connects to 127.0.0.1 for *.localhost URLs; the Host header (and TLS server name) keep
    the name, so a proxy routing by host (Traefik here) sees the URL as typed."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if is_loopback_name(host):
            request.url = request.url.copy_with(host=LOOPBACK)
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def tls_context(ca_cert: Path | None) -> ssl.SSLContext | bool:
    """How HTTPS certificates are verified: by the system's CAs, or (--ca-cert FILE) by that
    root alone (a private CA's). Always verified: the tool has no way to skip it."""
    if ca_cert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as error:
        raise ApiError(f"--ca-cert {ca_cert}: not a readable PEM certificate ({error})") from None


def is_certificate_error(error: BaseException) -> bool:
    """Whether a failed connection is a certificate the client cannot verify (not worth a
    retry: the same certificate comes back)."""
    while error is not None:
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


def http_client(timeout: float, connections: int = 4,
                transport: httpx.AsyncBaseTransport | None = None,
                ca_cert: Path | None = None) -> httpx.AsyncClient:
    """The tool's HTTP client: *.localhost to loopback, its User-Agent, the timeout per wait,
    certificates verified (by ca_cert alone when given)."""
    inner = transport or httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=connections), verify=tls_context(ca_cert))
    return httpx.AsyncClient(transport=LoopbackTransport(inner),
                             timeout=httpx.Timeout(timeout, connect=10.0),
                             headers={"User-Agent": "cassava-survey"})


def describe_answer(reply: httpx.Response) -> str:
    """An error answer in a line: the problem document's title, detail and code when the server
    sent application/problem+json, else the status and the start of the body."""
    if "json" in reply.headers.get("content-type", ""):
        try:
            problem = reply.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and ("detail" in problem or "title" in problem):
            code = f" [{problem['code']}]" if problem.get("code") else ""
            return (f"HTTP {reply.status_code} {problem.get('title') or ''}: "
                    f"{problem.get('detail') or ''}{code}").replace(" :", ":")
    if "html" in reply.headers.get("content-type", "") or looks_like_html(reply.text):
        # A web server's page (nginx's "405 Not Allowed"), not the API's answer: most often the
        # URL names the page's host instead of the API's.
        return (f"HTTP {reply.status_code} {reply.reason_phrase}: a web page answered, not the "
                "cassava API: is --api the API's address (e.g. http://api.service.localhost), "
                "not the page's (ui.service.localhost)?")
    text = " ".join(reply.text.split())[:200]
    return f"HTTP {reply.status_code} {reply.reason_phrase}" + (f": {text}" if text else "")


def looks_like_html(text: str) -> bool:
    return text.lstrip()[:15].lower().startswith(("<!doctype html", "<html"))


def describe_transport_error(url: str, error: httpx.TransportError) -> str:
    if is_certificate_error(error):
        cause = error.__cause__ or error.__context__
        reason = getattr(cause, "verify_message", None) or str(error)
        return (f"the certificate of {httpx.URL(url).host} cannot be verified ({reason}); "
                "if the server uses a private CA, give its root with --ca-cert FILE")
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect to {url} ({error or type(error).__name__})"
    if isinstance(error, httpx.TimeoutException):
        return f"no answer from {url} in time ({type(error).__name__})"
    return f"connection to {url} failed ({type(error).__name__}: {error})"


class SurveyClient:
    """Sends batches of photos to the API; retries what is worth retrying (429, 502, 503, 504,
    connection failures) with backoff, honouring Retry-After; raises ApiError otherwise."""

    def __init__(self, api: str, *, retries: int = 5, timeout: float = 120.0,
                 connections: int = 4,
                 on_retry: Callable[[str, float], None] = lambda message, delay: None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 jitter: Callable[[], float] = random.random,
                 transport: httpx.AsyncBaseTransport | None = None,
                 ca_cert: Path | None = None) -> None:
        url = httpx.URL(api)
        if url.scheme not in ("http", "https") or not url.host:
            raise ApiError(f"--api must be an http:// or https:// URL, got {api!r}")
        self.url = str(url.copy_with(path=url.path.rstrip("/") + BATCH_PATH))
        self.retries = retries
        self.on_retry = on_retry
        self.sleep = sleep
        self.jitter = jitter
        self.http = http_client(timeout, connections, transport, ca_cert)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def diagnose(self, photos: Sequence[Photo]) -> list[dict[str, Any]]:
        """The API's result for each photo, in order. A batch the server finds too large is
        split in two; a single photo it refuses as too large gets that problem as its result."""
        attempt = 0
        while True:
            try:
                reply = await self._post(photos)
            except httpx.TransportError as error:
                failure, retry_after = describe_transport_error(self.url, error), None
                if is_certificate_error(error):
                    raise ApiError(failure) from None
            else:
                if reply.status_code == 200:
                    return self._results(reply, len(photos))
                if reply.status_code == 413 and len(photos) > 1:
                    half = len(photos) // 2
                    return [*await self.diagnose(photos[:half]),
                            *await self.diagnose(photos[half:])]
                if reply.status_code == 413:
                    return [{"problem": self._problem(reply)}]
                failure = describe_answer(reply)
                if reply.status_code not in RETRY_STATUSES:
                    raise ApiError(f"the API refused the request: {failure}")
                retry_after = parse_retry_after(reply.headers.get("retry-after"))
            attempt += 1
            if attempt > self.retries:
                raise ApiError(f"{failure}; gave up after {self.retries} retries")
            delay = backoff_delay(attempt, retry_after, jitter=self.jitter())
            self.on_retry(failure, delay)
            await self.sleep(delay)

    async def _post(self, photos: Sequence[Photo]) -> httpx.Response:
        contents = await asyncio.to_thread(lambda: [photo.path.read_bytes() for photo in photos])
        files = [("images", (photo.path.name, data, "application/octet-stream"))
                 for photo, data in zip(photos, contents, strict=True)]
        return await self.http.post(self.url, files=files)

    def _results(self, reply: httpx.Response, count: int) -> list[dict[str, Any]]:
        try:
            results = reply.json()["results"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(f"{self.url} answered 200 without a batch result: is --api the "
                           "cassava API?") from None
        if not isinstance(results, list) or len(results) != count:
            got = len(results) if isinstance(results, list) else "no list of"
            raise ApiError(f"{self.url} answered {got} results for {count} photos")
        for index, result in enumerate(results):
            if not is_batch_result(result):
                raise ApiError(f"{self.url} answered a malformed result for photo {index + 1} "
                               f"of {count} ({json.dumps(result)[:80]}): is --api the cassava "
                               "API?")
        return results

    @staticmethod
    def _problem(reply: httpx.Response) -> dict[str, Any]:
        try:
            problem = reply.json()
        except ValueError:
            problem = None
        if isinstance(problem, dict) and problem.get("code"):
            return problem
        return {"code": "body_too_large", "detail": describe_answer(reply)}
