"""What the browser tests share: Chromium's flags, traffic recording, and page actions."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, FilePayload, Page, Request

from tests.support.paths import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
UI_HOST = "ui.service.localhost"
HTML_DIR = REPO_ROOT / "ui.service" / "html"
LANGUAGES = ("en", "fr", "sw", "pt")
PREDICT_PATH = "/api/predict/image"
FIELD = "image_to_predict"
UPLOAD_LIMIT = 150_000  # bytes of request body for any photo, however large
# The page's Content-Security-Policy (ui.service/nginx/default.conf): same-origin everything, no
# inline code; 'wasm-unsafe-eval' only lets the on-device runtime compile its WebAssembly.
PAGE_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
            "img-src 'self' blob: data:; connect-src 'self'; worker-src 'self'; "
            "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            "frame-ancestors 'none'")


def ui_url(stack: Any, path: str = "/") -> str:
    return stack.url(UI_HOST, path)


def strings(language: str) -> dict[str, Any]:
    """One language file of the page, as the page loads it."""
    return json.loads((HTML_DIR / "i18n" / f"{language}.json").read_text(encoding="utf-8"))


# The page reports CSP violations to the test through this binding (init scripts bypass the CSP).
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) =>
  window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`));
"""


@dataclass
class Traffic:
    """Requests of a browser context (pages and service workers) and what went wrong."""

    requests: list[Request] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, context: BrowserContext) -> Traffic:
        traffic = cls()
        context.on("request", lambda request: traffic.requests.append(request))
        context.on("console", traffic._console)
        context.expose_binding("__cspViolation",
                               lambda _source, text: traffic.csp_violations.append(text))
        context.add_init_script(_CSP_LISTENER)
        return traffic

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def uploads(self) -> list[Request]:
        return [r for r in self.requests
                if r.method == "POST" and urlsplit(r.url).path == PREDICT_PATH]

    def hosts(self) -> set[str]:
        return {urlsplit(r.url).hostname or "" for r in self.requests
                if urlsplit(r.url).scheme in ("http", "https", "ws", "wss")}


@dataclass
class SentUpload:
    """One POST to the API as it went on the wire: headers and the exact body bytes."""

    content_type: str
    body: bytes

    def files(self) -> dict[str, tuple[str | None, str, bytes]]:
        """The multipart files: field -> (filename, content type, bytes)."""
        head = f"Content-Type: {self.content_type}\r\n\r\n".encode()
        message = BytesParser(policy=policy.default).parsebytes(head + self.body)
        return {part.get_param("name", header="content-disposition"):
                (part.get_filename(), part.get_content_type(), part.get_content())
                for part in message.iter_parts()}


class UploadRecorder:
    """Bodies of the page's uploads, read through the DevTools protocol.

    Playwright's Request.post_data_buffer is None for bodies built from a Blob (the page sends a
    canvas JPEG); Network.getRequestPostData returns them.
    """

    def __init__(self, page: Page) -> None:
        self._cdp = page.context.new_cdp_session(page)
        self._sent: list[tuple[str, dict[str, str]]] = []
        self._cdp.on("Network.requestWillBeSent", self._on_request)
        self._cdp.send("Network.enable", {"maxPostDataSize": 20_000_000})

    def _on_request(self, event: dict[str, Any]) -> None:
        request = event["request"]
        if request["method"] == "POST" and urlsplit(request["url"]).path == PREDICT_PATH:
            self._sent.append((event["requestId"], request["headers"]))

    def uploads(self) -> list[SentUpload]:
        sent = []
        for request_id, headers in self._sent:
            data = self._cdp.send("Network.getRequestPostData", {"requestId": request_id})
            raw = data["postData"]
            body = base64.b64decode(raw) if data.get("base64Encoded") else raw.encode("latin-1")
            lower = {key.lower(): value for key, value in headers.items()}
            sent.append(SentUpload(lower["content-type"], body))
        return sent


def open_page(page: Page, url: str) -> Page:
    """Load the page and wait until its strings are in (app.js marks <body> ready)."""
    page.goto(url)
    page.wait_for_selector("body.ready")
    return page


def choose_photo(page: Page, photo: Path | FilePayload, button: str = "#choose") -> None:
    """Pick a photo (a path, or name/mimeType/buffer) through the file chooser the button opens."""
    with page.expect_file_chooser() as chooser:
        page.click(button)
    chooser.value.set_files(photo)


def wait_for_result(page: Page) -> dict[str, Any]:
    """The result section's texts once it is shown."""
    page.wait_for_selector("#result:not([hidden])")
    return {
        "name": page.inner_text("#result-name"),
        "confidence": page.inner_text("#result-confidence"),
        "low": page.is_visible("#result-low"),
        "others": page.locator("#result-others li").all_inner_texts(),
        "advice": page.locator("#advice-steps li").all_inner_texts(),
        "sources": page.locator("#advice-sources li").all_inner_texts(),
    }


def wait_for_error(page: Page) -> str:
    page.wait_for_function("() => document.getElementById('error-text').textContent.length > 0")
    return page.inner_text("#error-text")


def service_worker_state(page: Page) -> str:
    """'activated' once the worker controls the scope (waits for registration to finish)."""
    return page.evaluate("""async () => {
        const registration = await navigator.serviceWorker.ready;
        const worker = registration.active;
        if (worker.state !== 'activated') {
            await new Promise((resolve) => worker.addEventListener('statechange', () =>
                worker.state === 'activated' && resolve()));
        }
        return worker.state;
    }""")
