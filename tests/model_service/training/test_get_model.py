"""scripts/get-model: the catalogued article model from a local HTTP server (or a file on disk),
verified, installed as the next version that a running model server switches to with no failed
request and serves exactly like Keras; anything but the catalogued bytes is refused with nothing
written anywhere."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.model_service.clients import output_of, predict_request
from tests.support.model_server import RunningModelServer, start_model_server
from tests.support.paths import SCRIPTS_DIR, SEED_MODEL_BASE_PATH, SEED_MODEL_H5
from tests.support.ports import free_port
from training.get_model import load_catalogue
from training.repository import versions

pytestmark = pytest.mark.slow
NAME = "cassava"
TOLERANCE = 1e-5
ARTICLE = load_catalogue()["article"]
GOOD = SEED_MODEL_H5.read_bytes()


def flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


# GET /<name>: the good file, a byte-flipped copy, a short copy, a download that breaks off
# halfway (full Content-Length, half the bytes), HTML error pages served with 200 (one typed, one
# posing as a binary without a length). Content-Length: the third item, else the body's length;
# -1: none (the body ends when the connection closes).
ROUTES: dict[str, tuple[str, bytes, int | None]] = {
    "/best-model.h5": ("application/octet-stream", GOOD, None),
    "/flipped.h5": ("application/octet-stream", flipped(GOOD), None),
    "/short.h5": ("application/octet-stream", GOOD[:-1000], None),
    "/broken-off.h5": ("application/octet-stream", GOOD[:len(GOOD) // 2], len(GOOD)),
    "/html-page.h5": ("text/html; charset=utf-8",
                      b"<!DOCTYPE html><html><body>Sign in to continue</body></html>", None),
    "/untyped-page.h5": ("application/octet-stream",
                         b"<!doctype html>\n<html><title>404</title></html>", -1),
}


class Files(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/trickle.h5":  # the full length announced, then a byte every 0.5 s
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(GOOD)))
            self.end_headers()
            for index in range(40):
                self.wfile.write(GOOD[index:index + 1])
                self.wfile.flush()
                time.sleep(0.5)
            self.close_connection = True
            return
        if self.path.startswith("/elsewhere/"):  # another host: same server, named otherwise
            self.send_response(302)
            port = self.server.server_address[1]
            self.send_header("Location", f"http://localhost:{port}/{self.path.split('/')[-1]}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path not in ROUTES:
            self.send_error(404)
            return
        kind, body, length = ROUTES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if length != -1:
            self.send_header("Content-Length", str(length or len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository whose version 1 is the article's own SavedModel (same signature names
    as the converted h5, so traffic stays valid across the switch)."""
    repo = tmp_path_factory.mktemp("repository")
    shutil.copytree(SEED_MODEL_BASE_PATH / "1", repo / NAME / "1")
    shutil.copy(SEED_MODEL_BASE_PATH / "labels.json", repo / NAME / "labels.json")
    return repo


@pytest.fixture(scope="module")
def server(repository: Path, logs_dir: Path) -> Iterator[RunningModelServer]:
    running = start_model_server(NAME, repository / NAME, logs_dir)
    yield running
    running.stop()


def get_model(*args: str | Path, tmpdir: Path, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """Run the real command with its own TMPDIR, so leftovers can be seen."""
    tmpdir.mkdir(exist_ok=True)
    return subprocess.run([SCRIPTS_DIR / "get-model", "article", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                               "TMPDIR": str(tmpdir), **(env or {})})


def listing(root: Path) -> dict[str, str]:
    """Every path under root (hidden ones too) with a digest of its contents."""
    return {p.relative_to(root).as_posix():
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


class Traffic:
    """Predict calls in a loop on another thread (no version asked: the server's latest)."""

    def __init__(self, server: RunningModelServer, batch: np.ndarray) -> None:
        self.server, self.batch = server, batch
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with grpc.insecure_channel(self.server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            deadline = time.monotonic() + 240
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    reply = stub.Predict(predict_request(self.batch, model=NAME), timeout=30)
                    self.versions.append(reply.model_spec.version.value)
                except grpc.RpcError as error:
                    self.failures.append(f"{error.code()}: {error.details()}")
                time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def install_while_serving(server: RunningModelServer, leaf_inputs: dict[str, np.ndarray],
                          tmp_path: Path, *args: str | Path) -> int:
    """Run get-model under traffic; return the new version once the server answers with it."""
    model_dir = server.base_path
    expected = max(versions(model_dir)) + 1
    batch = next(iter(leaf_inputs.values()))
    with Traffic(server, batch) as traffic:
        result = get_model(*args, "--repository", model_dir.parent, "--name", NAME,
                           tmpdir=tmp_path / "tmp")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"installed 'article' as {model_dir / str(expected)}" in result.stdout
        assert "verified" in result.stderr
        server.process.wait_until(lambda: traffic.versions[-1] == expected, 90,
                                  f"answers from version {expected}")
        time.sleep(0.5)  # a few more answers after the switch
    assert traffic.failures == []
    assert expected - 1 in traffic.versions and traffic.versions[-1] == expected
    assert list((tmp_path / "tmp").iterdir()) == []
    return expected


def assert_served_like_keras(server: RunningModelServer, version: int,
                             leaf_inputs: dict[str, np.ndarray], keras_predict) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for name, batch in leaf_inputs.items():
            reply = stub.Predict(predict_request(batch, model=NAME, version=version), timeout=30)
            difference = np.max(np.abs(output_of(reply) - keras_predict(batch)))
            assert difference <= TOLERANCE, (name, difference)


def assert_article_card(model_dir: Path, version: int) -> None:
    cards = json.loads((model_dir / "model.json").read_text())["versions"]
    card = cards[str(version)]
    assert card["demo"] is False
    assert card["licence"] == "MIT"
    assert card["attribution"] == "Copyright (c) 2021 Patrick Kalkman"
    assert card["source"]["commit"] == "13f111d5bc4800c7f7fe78a54dd8f36b682315f8"
    assert card["source"]["sha256"] == hashlib.sha256(GOOD).hexdigest()
    assert card["source"]["url"] == ARTICLE["url"]
    artifact = model_dir / str(version) / card["on_device"]["file"]
    assert card["on_device"]["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    (accuracy,) = card["metrics"]
    assert accuracy["value"] == 0.8935 and "89.35%" in accuracy["quote"]
    assert "betterprogramming.pub" in accuracy["source"]
    assert any("one leaf per photo" in text.lower() for text in card["limitations"])
    labels = json.loads((model_dir / "labels.json").read_text())
    assert [label["code"] for label in labels] == ["CBB", "CBSD", "CGM", "CMD", "Healthy"]


def test_url_installs_the_next_version_and_the_server_switches(
        server, file_server, leaf_inputs, keras_predict, tmp_path):
    version = install_while_serving(server, leaf_inputs, tmp_path,
                                    "--url", f"{file_server}/best-model.h5")
    assert_served_like_keras(server, version, leaf_inputs, keras_predict)
    assert_article_card(server.base_path, version)


def test_file_installs_the_next_version_and_the_server_switches(
        server, leaf_inputs, keras_predict, tmp_path):
    version = install_while_serving(server, leaf_inputs, tmp_path, "--file", SEED_MODEL_H5)
    assert_served_like_keras(server, version, leaf_inputs, keras_predict)
    assert_article_card(server.base_path, version)


def test_a_trickling_server_meets_the_overall_deadline(repository, file_server, tmp_path):
    # Issue 20: one byte every 0.5 s never trips --timeout (per read); --deadline ends it.
    before = listing(repository)
    result = get_model("--url", f"{file_server}/trickle.h5", "--repository", repository,
                       "--name", NAME, "--timeout", "3", "--deadline", "2",
                       tmpdir=tmp_path / "tmp")
    assert result.returncode == 1
    assert f"get-model: error: {file_server}/trickle.h5: " in result.stderr
    assert "after 2 s; giving up (--deadline changes it)" in result.stderr
    assert "Traceback" not in result.stderr
    assert listing(repository) == before


def test_a_redirect_to_another_host_is_reported_and_errors_name_the_url_that_failed(
        repository, file_server, tmp_path):
    port = file_server.rsplit(":", 1)[1]
    result = get_model("--url", f"{file_server}/elsewhere/missing.h5", "--repository",
                       repository, "--name", NAME, "--timeout", "10", tmpdir=tmp_path / "tmp")
    assert result.returncode == 1
    assert (f"{file_server}/elsewhere/missing.h5 redirected to "
            f"http://localhost:{port}/missing.h5 (another host)") in result.stderr
    assert f"error: http://localhost:{port}/missing.h5: the server answered HTTP 404" in \
        result.stderr


@pytest.mark.parametrize(("source", "message"), [
    ("/flipped.h5", "has SHA-256"),
    ("/short.h5", "announces 4,008,608 bytes"),
    ("/broken-off.h5", "truncated"),
    ("/html-page.h5", "sent a web page (text/html"),
    ("/untyped-page.h5", "is an HTML page"),
    ("/missing.h5", "HTTP 404"),
    ("refused", "cannot connect"),
    ("file:flipped", "has SHA-256"),
    ("file:truncated", "is truncated: 2,004,804 of 4,009,608 bytes"),
    ("file:html", "is an HTML page"),
], ids=lambda value: value.strip("/").replace(":", "-") if isinstance(value, str) else None)
def test_anything_but_the_catalogued_file_is_refused_and_nothing_is_left(
        repository, file_server, tmp_path, source, message):
    before = listing(repository)
    if source == "refused":
        args = ["--url", f"http://127.0.0.1:{free_port()}/best-model.h5"]
    elif source.startswith("file:"):
        data = {"flipped": flipped(GOOD), "truncated": GOOD[:len(GOOD) // 2],
                "html": b"<!DOCTYPE html><html><body>Not Found</body></html>"}[source[5:]]
        carried = tmp_path / "carried" / "best-model.h5"
        carried.parent.mkdir()
        carried.write_bytes(data)
        args = ["--file", carried]
    else:
        args = ["--url", f"{file_server}{source}"]
    result = get_model(*args, "--repository", repository, "--name", NAME,
                       "--timeout", "10", tmpdir=tmp_path / "tmp")
    assert result.returncode == 1
    assert message in result.stderr
    assert "get-model: error:" in result.stderr and "nothing was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert listing(repository) == before
    assert list((tmp_path / "tmp").iterdir()) == []
