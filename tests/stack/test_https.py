"""HTTPS on real-looking names through run-local (docs/tls.md): Traefik obtains certificates
from Pebble (Let's Encrypt's ACME test server) over the ACME protocol, with HTTP-01 validated
for real against the stack's port. The run goes through the order an operator meets:
the CA is down at the first start, it comes back and the running stack gets the certificates
(traefik/acme-retry.sh makes Traefik ask again), every HTTPS property is checked, Traefik
restarts and reuses them."""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.x509.oid import NameOID

from tests.support.certs import write_ca_and_server
from tests.support.local_stack import API_HOST as LOCAL_API_HOST
from tests.support.local_stack import UI_HOST as LOCAL_UI_HOST
from tests.support.local_stack import LocalStack, start_local_stack
from tests.support.paths import REPO_ROOT, leaf_photos
from tests.support.pebble import Pebble, pebble_api_certificate, start_pebble
from tests.support.ports import free_port
from tests.support.sockets import read_until_closed
from tests.support.tls_client import (
    dns_names,
    handshake,
    https_request,
    trusting,
    unverified_certificate,
)
from tests.support.waiting import wait_until
from tests.ui_service.browsing import (
    CHROMIUM,
    CHROMIUM_ARGS,
    Traffic,
    choose_photo,
    open_page,
    service_worker_state,
    wait_for_result,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

UI_NAME = "ui.cassava.test"
API_NAME = "api.cassava.test"
NAMES = (UI_NAME, API_NAME)
YEAR = 365 * 24 * 3600
# Mozilla's "intermediate" TLS 1.2 suites Go implements (the DHE ones it does not), and TLS 1.3's.
MOZILLA_INTERMEDIATE = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}


@dataclass
class HTTPSRun:
    """One run-local stack on fixed ports (so restarts keep RUN_DIR and acme.json), its CA."""
    work: Path
    port: int
    https_port: int
    ca_port: int
    stack: LocalStack | None = None
    pebble: Pebble | None = None
    root: Path | None = None
    starts: int = 0

    def env(self) -> dict[str, str]:
        return {"UI_HOST": UI_NAME, "API_HOST": API_NAME, "HTTPS_PORT": str(self.https_port),
                "ACME_EMAIL": "operator@cassava.test",
                "ACME_CA_SERVER": f"https://127.0.0.1:{self.ca_port}/dir",
                # acme-retry.sh's first wait (then 2 s, 4 s ...): the CA is back within seconds.
                "ACME_RETRY_SECONDS": "1",
                # Pebble's API certificate: how an operator trusts a private ACME CA.
                "LEGO_CA_CERTIFICATES": str(pebble_api_certificate(self.work)[0])}

    def start(self) -> LocalStack:
        self.stop_stack()
        self.stack = start_local_stack(self.work, port=self.port, env=self.env())
        self.starts += 1
        return self.stack

    def stop_stack(self) -> None:
        if self.stack:
            self.stack.stop()
            self.stack = None

    def start_ca(self) -> Pebble:
        self.pebble = start_pebble(self.work, http_port=self.port, tls_port=self.https_port,
                                   port=self.ca_port)
        self.root = self.work / "pebble-root.pem"
        self.root.write_text(self.pebble.root_pem())
        return self.pebble

    def issued(self, name: str) -> bool:
        assert self.root
        try:
            handshake(self.https_port, name, trusting(self.root))
        except ssl.SSLError:
            return False
        return True

    def wait_for_certificates(self) -> None:
        # Up to acme-retry.sh's next attempt (its waits double: 1, 2, 4 ... 32 s within a minute
        # of the start) plus two orders: 90 s leaves a margin on a loaded machine.
        wait_until(lambda: all(self.issued(n) for n in NAMES), 90,
                   "certificates from Pebble for both names", every=0.5)

    def request(self, method: str, name: str, path: str = "/", **kwargs):
        assert self.root
        return https_request(method, self.https_port, name, path, self.root, **kwargs)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPSRun]:
    work = tmp_path_factory.mktemp("https")
    state = HTTPSRun(work, free_port(), free_port(), free_port())
    try:
        yield state
    finally:
        state.stop_stack()
        if state.pebble:
            state.pebble.stop()


@pytest.fixture(scope="module")
def issued(run: HTTPSRun) -> HTTPSRun:
    """The stack with its certificates: CA up, both names issued. A stack already running (the
    CA was down at its start) is kept: it must get them by itself."""
    if not run.pebble:
        run.start_ca()
    if run.stack is None:
        run.start()
    run.wait_for_certificates()
    return run


# -- the CA down at the first start ----------------------------------------------------------

def test_a_ca_down_at_start_still_serves_with_the_default_certificate(run: HTTPSRun) -> None:
    stack = run.start()  # nothing listens on the CA's port yet
    served = unverified_certificate(run.https_port, UI_NAME)
    assert served.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "TRAEFIK DEFAULT CERT"
    # The page is served meanwhile (over that certificate), and the log says why.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    answer = httpx.get(f"https://127.0.0.1:{run.https_port}/", headers={"Host": UI_NAME},
                       verify=context)
    assert answer.status_code == 200 and "<html" in answer.text.lower()
    wait_until(lambda: "cannot get ACME client get directory" in stack.log(), 30,
               "the ACME error in the log")
    assert f"127.0.0.1:{run.ca_port}/dir" in stack.log()


def test_the_certificates_arrive_once_the_ca_is_back(issued: HTTPSRun) -> None:
    """With no restart: Traefik never retries a failed order by itself (traefik/traefik#9405);
    acme-retry.sh gives it a new configuration until both names are issued (and then ends:
    tests/traefik/test_acme_retry.py)."""
    assert issued.pebble and issued.pebble.orders() == len(NAMES)
    assert issued.stack and issued.starts == 1
    log = issued.stack.log()
    assert "cannot get ACME client" in log and "acme-retry: no certificate yet" in log



# -- what a client sees ----------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_each_name_has_its_own_certificate_from_the_ca(issued: HTTPSRun, name: str) -> None:
    """Verified with Pebble's root as the only trust anchor (chain and host name)."""
    assert issued.root
    seen = handshake(issued.https_port, name, trusting(issued.root))
    assert dns_names(seen.certificate) == [name]
    assert seen.version in ("TLSv1.2", "TLSv1.3")


@pytest.mark.parametrize("name", NAMES)
def test_alpn_offers_http2(issued: HTTPSRun, name: str) -> None:
    assert issued.root
    assert handshake(issued.https_port, name, trusting(issued.root)).alpn == "h2"
    assert handshake(issued.https_port, name, trusting(issued.root),
                     alpn=("http/1.1",)).alpn == "http/1.1"


def test_http2_requests_are_served(issued: HTTPSRun) -> None:
    """Not only negotiated: a request over HTTP/2 gets its answer (h2 through httpx)."""
    assert issued.root
    with httpx.Client(verify=trusting(issued.root), http2=True) as client:
        answer = client.get(f"https://127.0.0.1:{issued.https_port}/",
                            headers={"Host": UI_NAME}, extensions={"sni_hostname": UI_NAME})
    assert answer.status_code == 200 and answer.http_version == "HTTP/2"


def test_https_answers_carry_hsts_of_a_year(issued: HTTPSRun) -> None:
    for name, path in ((UI_NAME, "/"), (API_NAME, "/v1/model"), (API_NAME, "/nowhere")):
        answer = issued.request("GET", name, path)
        hsts = answer.headers.get("strict-transport-security", "")
        assert hsts.startswith("max-age="), (name, path, answer.headers)
        assert int(hsts.split("=")[1].split(";")[0]) >= YEAR


def test_plain_http_redirects_to_https_keeping_the_method(issued: HTTPSRun) -> None:
    for method, expected in (("POST", 308), ("PUT", 308), ("GET", 301)):
        answer = httpx.request(method, f"http://127.0.0.1:{issued.port}/predict/image?x=1",
                               headers={"Host": API_NAME})
        assert answer.status_code == expected, (method, answer.status_code)
        assert answer.headers["location"] == \
            f"https://{API_NAME}:{issued.https_port}/predict/image?x=1"
        assert "strict-transport-security" not in answer.headers  # never over plain HTTP


def test_a_photo_is_diagnosed_over_https(issued: HTTPSRun) -> None:
    photo = leaf_photos()[0].read_bytes()
    for name, path in ((API_NAME, "/predict/image"), (UI_NAME, "/api/predict/image")):
        answer = issued.request("POST", name, path,
                                files={"image_to_predict": ("leaf.jpg", photo, "image/jpeg")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["code"] in ("CBB", "CBSD", "CGM", "CMD", "Healthy")


def test_the_load_tool_drives_both_names_over_https(issued: HTTPSRun, tmp_path: Path) -> None:
    # scripts/loadtest on the loopback address: each handshake names its host (SNI) and the
    # certificate is verified for it against the CA's root alone (loadtest/addresses.py).
    assert issued.root
    out = tmp_path / "loadtest"
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "loadtest"), "fixed", "--seconds", "5", "--users", "2",
         "--rate", "4", "--no-large", "--url", f"https://127.0.0.1:{issued.https_port}",
         "--ui-host", UI_NAME, "--api-host", API_NAME, "--ca-cert", str(issued.root),
         "--out", str(out)], capture_output=True, text=True, timeout=180, check=False)
    summary = json.loads((out / "fixed-summary.json").read_text())
    assert result.returncode == 0 and summary["failures"] == 0, (result.stdout,
                                                                 summary["errors"])
    sent = {name.rsplit("-", 1)[0] for name, figures in summary["by_payload"].items()
            if figures["requests"]}
    assert {"phone-800x600", "page-512"} <= sent  # the API's name and the page's


def test_the_acme_store_is_private(issued: HTTPSRun) -> None:
    assert issued.stack
    store = issued.stack.run_dir / "acme.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert all(name in store.read_text() for name in NAMES)


# -- clients that do not speak TLS properly --------------------------------------------------

# sslyze's bundled public trust stores hold an old root with a negative serial number, which
# `cryptography` warns about (the suite turns warnings into errors); Pebble's chain is not it.
@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_a_tls_scanner_finds_only_modern_tls_and_a_valid_chain(issued: HTTPSRun) -> None:
    """sslyze: no SSL 2/3, TLS 1.0 or 1.1 suite accepted; TLS 1.2/1.3 suites within Mozilla's
    intermediate list; the chain validates against Pebble's root for both names."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    assert issued.root
    commands = {ScanCommand.SSL_2_0_CIPHER_SUITES, ScanCommand.SSL_3_0_CIPHER_SUITES,
                ScanCommand.TLS_1_0_CIPHER_SUITES, ScanCommand.TLS_1_1_CIPHER_SUITES,
                ScanCommand.TLS_1_2_CIPHER_SUITES, ScanCommand.TLS_1_3_CIPHER_SUITES,
                ScanCommand.CERTIFICATE_INFO}
    scanner = Scanner()
    scanner.queue_scans([ServerScanRequest(
        server_location=ServerNetworkLocation(name, issued.https_port, ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration(name),
        scan_commands=commands,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=issued.root)))
        for name in NAMES])
    results = list(scanner.get_results())
    assert len(results) == len(NAMES)
    for result in results:
        name = result.server_location.hostname
        assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
        scan = result.scan_result
        assert scan
        for legacy in (scan.ssl_2_0_cipher_suites, scan.ssl_3_0_cipher_suites,
                       scan.tls_1_0_cipher_suites, scan.tls_1_1_cipher_suites):
            assert legacy.result and legacy.result.accepted_cipher_suites == [], name
        accepted = {s.cipher_suite.name for attempt in (scan.tls_1_2_cipher_suites,
                                                        scan.tls_1_3_cipher_suites)
                    for s in attempt.result.accepted_cipher_suites}
        assert accepted and accepted <= MOZILLA_INTERMEDIATE, (name, accepted)
        assert scan.tls_1_3_cipher_suites.result.accepted_cipher_suites, name
        info = scan.certificate_info
        trace = "".join(info.error_trace.format()) if info.error_trace else ""
        assert info.result, (name, info.error_reason, trace)
        deployment = info.result.certificate_deployments[0]
        custom = [v for v in deployment.path_validation_results
                  if v.trust_store.path == issued.root]
        assert custom and custom[0].was_validation_successful, (name, custom)
        assert deployment.received_chain_has_valid_order, name
        assert dns_names(deployment.received_certificate_chain[0]) == [name]


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1 is deprecated:DeprecationWarning")
def test_tls_1_0_handshake_is_refused(issued: HTTPSRun) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")  # the client really offers TLS 1.0
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):  # the server's alert
        handshake(issued.https_port, UI_NAME, context)


def test_garbage_and_plain_http_on_the_tls_port_get_no_backend_error(issued: HTTPSRun) -> None:
    garbage = random.Random(19).randbytes(4096)
    for payload in (garbage, b"\x16\x03\x01\x40\x00" + garbage, b"\x00" * 512):
        with socket.create_connection(("127.0.0.1", issued.https_port), timeout=10) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)  # all it sends; a stalled one meets readTimeout
            reply = read_until_closed(sock, 15)
        # A TLS alert, or the proxy's own 400 when the bytes do not even look like TLS.
        assert not reply.startswith(b"HTTP/") or reply.startswith(b"HTTP/1.1 400 "), reply[:80]
    # Plain HTTP to the TLS port: no route serves it (every route there needs TLS): the
    # proxy's own 404, never a backend, never a 5xx.
    with socket.create_connection(("127.0.0.1", issued.https_port), timeout=10) as sock:
        sock.sendall(f"POST /predict/image HTTP/1.1\r\nHost: {API_NAME}\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        reply = read_until_closed(sock, 15)
    assert reply.startswith(b"HTTP/1.1 4"), reply[:200]
    assert issued.request("GET", UI_NAME).status_code == 200  # and everyone else is served


# -- a real browser on a real-looking name ----------------------------------------------------

def chromium_trusting(playwright, root: Path, home: Path):
    """Debian's Chromium whose only added trust is `root`, in an NSS database of its own
    (a temporary HOME: ~/.pki/nssdb is where Chromium on Linux reads it); *.test resolves to
    127.0.0.1 inside the browser only. No certificate error is ignored."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "test-ca",
                    "-i", str(root)], check=True)
    return playwright.chromium.launch(
        executable_path=CHROMIUM, env={**os.environ, "HOME": str(home)},
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.test 127.0.0.1"])


@pytest.mark.browser
def test_chromium_loads_the_page_over_https_with_a_service_worker_and_diagnoses(
        issued: HTTPSRun, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright
    assert issued.root
    url = f"https://{UI_NAME}:{issued.https_port}/"
    with sync_playwright() as playwright:
        browser = chromium_trusting(playwright, issued.root, tmp_path)
        try:
            context = browser.new_context(locale="en-GB")
            traffic = Traffic.watch(context)
            page = open_page(context.new_page(), url)
            assert page.evaluate("window.isSecureContext")
            assert service_worker_state(page) == "activated"
            choose_photo(page, leaf_photos()[0])
            result = wait_for_result(page)
            assert result["name"] and result["confidence"]
            schemes = {urlsplit(r.url).scheme for r in traffic.requests}
            assert schemes <= {"https", "data", "blob"}, schemes  # no mixed content
            assert traffic.console_errors == [] and traffic.csp_violations == []
            assert traffic.uploads() and all(u.url.startswith(url) for u in traffic.uploads())
        finally:
            browser.close()


@pytest.mark.browser
def test_on_plain_http_the_same_name_gets_no_service_worker(tmp_path: Path) -> None:
    """The contrast: the same page on the same name over plain HTTP (HTTPS off) is no secure
    context, so the browser offers it no service worker (the page says why in the console,
    nothing breaks)."""
    from playwright.sync_api import sync_playwright
    stack = start_local_stack(tmp_path, env={"UI_HOST": UI_NAME, "API_HOST": API_NAME})
    try:
        with sync_playwright() as playwright:
            browser = chromium_trusting(playwright, write_ca_and_server(tmp_path, UI_NAME)[0],
                                        tmp_path / "home")
            try:
                page = open_page(browser.new_page(), f"http://{UI_NAME}:{stack.port}/")
                assert page.evaluate("window.isSecureContext") is False
                assert page.evaluate("'serviceWorker' in navigator") is False
            finally:
                browser.close()
    finally:
        stack.stop()


# -- the store outlives a restart ------------------------------------------------------------

def test_a_restart_reuses_the_stored_certificates(issued: HTTPSRun) -> None:
    assert issued.pebble
    orders = issued.pebble.orders()
    before = {n: handshake(issued.https_port, n, trusting(issued.root)).certificate  # type: ignore[arg-type]
              for n in NAMES}
    issued.start()
    for name in NAMES:  # served from the store at once, the same certificate
        assert handshake(issued.https_port, name,
                         trusting(issued.root)).certificate == before[name]  # type: ignore[arg-type]
    assert issued.pebble.orders() == orders


# -- own certificates ------------------------------------------------------------------------

def test_own_certificate_files_serve_https_and_the_survey_tool_trusts_only_its_ca(
        tmp_path: Path) -> None:
    """TLS_CERT_FILE/TLS_KEY_FILE (run-local's --tls-cert/--tls-key): a company CA's
    certificate, no ACME; the same redirect and ALPN. On *.localhost names: no HSTS. The
    survey tool verifies the certificate: with --ca-cert it diagnoses, without it stops with
    one line naming the problem (no traceback, no retries)."""
    ui, api = LOCAL_UI_HOST, LOCAL_API_HOST
    ca, cert, key = write_ca_and_server(tmp_path, ui, api)
    https_port = free_port()
    stack = start_local_stack(tmp_path, env={
        "HTTPS_PORT": str(https_port), "TLS_CERT_FILE": str(cert), "TLS_KEY_FILE": str(key)})
    try:
        for name in (ui, api):
            seen = handshake(https_port, name, trusting(ca))
            assert seen.alpn == "h2" and dns_names(seen.certificate) == [ui, api]
        answer = https_request("GET", https_port, ui, "/", ca)
        assert answer.status_code == 200
        assert "strict-transport-security" not in answer.headers  # never on *.localhost
        redirect = httpx.post(f"http://127.0.0.1:{stack.port}/x", headers={"Host": ui})
        assert redirect.status_code == 308
        assert not (stack.run_dir / "acme.json").exists()

        photos = tmp_path / "photos"
        photos.mkdir()
        (photos / "leaf.jpg").write_bytes(leaf_photos()[0].read_bytes())
        url = f"https://{api}:{https_port}"
        trusted = survey_cli("diagnose", photos, "--api", url, "--ca-cert", ca,
                             "--out", tmp_path / "ok.csv")
        assert trusted.returncode == 0, trusted.stderr
        assert (tmp_path / "ok.csv").read_text().count("\n") == 2  # the header and the photo
        refused = survey_cli("diagnose", photos, "--api", url, "--out", tmp_path / "no.csv")
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr and "retrying" not in refused.stderr
        (line,) = [line for line in refused.stderr.splitlines() if "cannot be verified" in line]
        assert f"the certificate of {api} cannot be verified" in line and "--ca-cert" in line
        # get-model takes the same root, and refuses the same way without it. This stack serves
        # the article's model, which has no on-device file: trusted, the API's answer says so.
        trusted = survey_cli("get-model", "--api", url, "--ca-cert", ca, "--out", tmp_path / "pack")
        assert trusted.returncode == 1 and "cannot be verified" not in trusted.stderr
        assert "offers no on-device model for its model version 1" in trusted.stderr
        unverified = survey_cli("get-model", "--api", url, "--out", tmp_path / "no-pack")
        assert unverified.returncode == 1 and "Traceback" not in unverified.stderr
        assert f"the certificate of {api} cannot be verified" in unverified.stderr
        assert not (tmp_path / "no-pack").exists()
    finally:
        stack.stop()


def survey_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REPO_ROOT / ".venv" / "bin" / "cassava-survey", *map(str, args)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
