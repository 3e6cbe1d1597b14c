"""`cassava-survey diagnose --offline-model` with the bundled demo model's on-device file, in this
process (no TensorFlow: ai-edge-litert runs it): the API's preprocessing is the very same file,
packs are verified by SHA-256, the rows say `device`, and every fault is one clear line."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cassava_survey import imaging as client_imaging
from cassava_survey.cli import main
from cassava_survey.offline import Meta, OfflineError, OfflineModel, load_pack, save_pack
from tests.client.conftest import SurveyFolder
from tests.support.litert_reference import device_probabilities
from tests.support.paths import MODEL_REPOSITORY, REPO_ROOT, leaf_photos

DEMO_DIR = MODEL_REPOSITORY / "cassava"
DEMO_CARD = json.loads((DEMO_DIR / "model.json").read_text())["versions"]["1"]
DEMO_ARTIFACT = (DEMO_DIR / "1" / DEMO_CARD["on_device"]["file"]).read_bytes()


def demo_meta() -> Meta:
    labels = json.loads((DEMO_DIR / "labels.json").read_text())
    return Meta(name="cassava", version=1, sha256=hashlib.sha256(DEMO_ARTIFACT).hexdigest(),
                bytes=len(DEMO_ARTIFACT), quantization="dynamic_range",
                labels=[{"code": x["code"], "name": x["name"]} for x in labels], demo=True)


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    save_pack(OfflineModel(demo_meta(), DEMO_ARTIFACT), tmp_path / "pack")
    return tmp_path / "pack"


def test_the_preprocessing_is_the_apis_own_file() -> None:
    """One definition: the client's imaging and probabilities modules are the API's files."""
    api = REPO_ROOT / "api.service" / "app"
    assert Path(client_imaging.__file__).samefile(api / "imaging.py")
    from cassava_survey import probabilities

    assert Path(probabilities.__file__).samefile(api / "probabilities.py")


def test_the_client_tensor_is_the_apis(leaf_photo_paths: list[Path]) -> None:
    from app.imaging import image_to_tensor

    for photo in leaf_photo_paths:
        data = photo.read_bytes()
        assert np.array_equal(
            client_imaging.image_to_tensor(data, height=150, width=150, max_pixels=50_000_000),
            image_to_tensor(data, height=150, width=150, max_pixels=50_000_000))


def test_the_committed_demo_file_matches_its_card() -> None:
    assert DEMO_CARD["on_device"]["sha256"] == hashlib.sha256(DEMO_ARTIFACT).hexdigest()
    assert DEMO_CARD["on_device"]["bytes"] == len(DEMO_ARTIFACT)


def test_a_pack_round_trips_and_answers(pack: Path) -> None:
    model = load_pack(pack)
    assert model.meta == demo_meta()
    answer = model.diagnose(leaf_photos()[0].read_bytes())["prediction"]
    assert answer["code"] in {"CBB", "CBSD", "CGM", "CMD", "Healthy"}
    assert 0.2 <= answer["confidence"] <= 1 and 0 <= answer["entropy"] <= 1
    assert answer["model"] == {"name": "cassava", "version": 1}
    assert load_pack(pack / "model.tflite").meta == load_pack(pack / "model.json").meta


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "model.tflite").write_bytes(DEMO_ARTIFACT[:-1] + b"x"), "has SHA-256"),
    (lambda p: (p / "model.tflite").write_bytes(DEMO_ARTIFACT[:100]), "is 100 bytes, not"),
    (lambda p: (p / "model.tflite").unlink(), "model.tflite is missing"),
    (lambda p: (p / "model.json").write_text("{}"), "is not a cassava-survey model description"),
    (lambda p: (p / "model.json").write_text("{"), "cannot read the offline model"),
])
def test_a_damaged_pack_is_refused_in_one_line(pack: Path, damage, message: str) -> None:
    damage(pack)
    with pytest.raises(OfflineError, match=message) as refused:
        load_pack(pack)
    assert "\n" not in str(refused.value)


def test_not_a_model_is_refused_in_one_line(tmp_path: Path) -> None:
    garbage = b"not a flatbuffer" * 10
    meta = Meta(**{**demo_meta().__dict__, "sha256": hashlib.sha256(garbage).hexdigest(),
                   "bytes": len(garbage)})
    with pytest.raises(OfflineError, match="cannot be loaded"):
        OfflineModel(meta, garbage).diagnose(leaf_photos()[0].read_bytes())


def test_refusals_carry_the_apis_problem_codes(pack: Path) -> None:
    model = load_pack(pack)
    data = leaf_photos()[0].read_bytes()
    assert model.diagnose(data[: len(data) // 3])["problem"]["code"] == "truncated_image"
    assert model.diagnose(b"")["problem"]["code"] == "empty_image"
    assert model.diagnose(b"GIF89a....")["problem"]["code"] == "unsupported_media_type"


# cli.diagnose's progress bar asks click for stderr the way click 8.5 deprecates (its own code,
# run by the subprocess tests in test_cli.py): not this test's subject.
@pytest.mark.filterwarnings("ignore:'get_text_stream' is deprecated:DeprecationWarning")
def test_diagnose_offline_writes_the_same_csv_and_geojson_marked_device(
        pack: Path, survey_folder: SurveyFolder, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    result = CliRunner().invoke(main, ["diagnose", str(survey_folder.root), "--offline-model",
                                       str(pack), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "offline model: cassava version 1" in result.output and "DEMO" in result.output
    with out.open(newline="") as file:
        rows = {Path(row["file"]).name: row for row in csv.DictReader(file)}
    assert sorted(rows) == sorted(survey_folder.photos)
    assert {row["source"] for row in rows.values()} == {"device"}
    assert rows["cut.jpg"]["error"] == "truncated_image"
    assert rows["kisumu.jpg"]["code"] and rows["kisumu.jpg"]["latitude"]
    features = json.loads(out.with_suffix(".geojson").read_text())["features"]
    assert {feature["properties"]["source"] for feature in features} == {"device"}


@pytest.mark.parametrize("args, message", [
    ([], "give either --api URL"),
    (["--api", "http://x", "--offline-model", "p"], "give either --api URL"),
    (["--offline-model", "/nonexistent/pack"], "Error: no offline model at /nonexistent/pack"),
    (["--offline-model", "/nonexistent/pack", "--ca-cert", "ca.pem"],
     "--ca-cert is for an https:// address"),
    (["--offline-model", "https://api", "--ca-cert", "/nonexistent/ca.pem"],
     "--ca-cert /nonexistent/ca.pem: not a readable PEM certificate"),
])
def test_wrong_options_are_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["diagnose", str(tmp_path), "--out",
                                       str(tmp_path / "r.csv"), *args])
    assert result.exit_code != 0
    assert message in result.output


def test_an_api_without_an_on_device_model_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    import httpx

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "cassava", "version": 4, "labels": [],
                                         "on_device": None})

    import cassava_survey.api

    def mocked(timeout: float, connections: int = 4, transport=None,
               ca_cert=None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(answer))

    monkeypatch.setattr(cassava_survey.api, "http_client", mocked)
    result = CliRunner().invoke(main, ["get-model", "--api", "http://api", "--out",
                                       str(tmp_path / "pack")])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: http://api offers no on-device model for its model version 4 (on_device is "
        "null): diagnose online, or ask its operator to run scripts/make-on-device-model")
    assert not (tmp_path / "pack").exists()


# --- get-model against a fake API (httpx.MockTransport; the real one: tests/stack) ---------

def fake_api(served: bytes, *, trickle: float = 0.0, announced: bytes = DEMO_ARTIFACT,
             calls: list[str] | None = None):
    """GET /v1/model announcing `announced` (the demo's file); the file route sends `served`,
    a byte at a time every `trickle` seconds when set."""
    import asyncio

    import httpx

    sha256 = hashlib.sha256(announced).hexdigest()
    url = f"/v1/model/versions/1/on-device/{sha256}.tflite"
    labels = json.loads((DEMO_DIR / "labels.json").read_text())

    async def slowly():
        for index in range(len(served)):
            await asyncio.sleep(trickle)
            yield served[index:index + 1]

    def answer(request: httpx.Request) -> httpx.Response:
        if calls is not None:
            calls.append(request.url.path)
        if request.url.path == "/v1/model":
            return httpx.Response(200, json={
                "name": "cassava", "version": 1, "labels": labels, "demo": True,
                "on_device": {"format": "tflite", "url": url, "sha256": sha256,
                              "bytes": len(announced), "quantization": "dynamic_range",
                              "version": 1}})
        if request.url.path == url:
            return httpx.Response(200, content=slowly() if trickle else served)
        return httpx.Response(404, json={"title": "Not Found", "detail": "no", "code": "x"})

    def client(timeout: float, connections: int = 4, transport=None,
               ca_cert=None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(answer))

    return client


def get_model_run(monkeypatch: pytest.MonkeyPatch, directory: Path, client, *extra: str):
    import cassava_survey.api

    monkeypatch.setattr(cassava_survey.api, "http_client", client)
    return CliRunner().invoke(main, ["get-model", "--api", "http://api", "--out", str(directory),
                                     *extra])


def test_get_model_stores_the_verified_file_once(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    calls: list[str] = []
    first = get_model_run(monkeypatch, tmp_path / "pack", fake_api(DEMO_ARTIFACT, calls=calls))
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"stored cassava version 1 ({len(DEMO_ARTIFACT):,} bytes")
    assert "DEMO" in first.output
    assert load_pack(tmp_path / "pack").content == DEMO_ARTIFACT
    again = get_model_run(monkeypatch, tmp_path / "pack", fake_api(DEMO_ARTIFACT, calls=calls))
    assert again.output.startswith("already stored cassava version 1")
    assert sum(1 for path in calls if path.endswith(".tflite")) == 1  # downloaded once


@pytest.mark.parametrize("served, message", [
    (DEMO_ARTIFACT[:-1] + b"x", "has SHA-256"),
    (DEMO_ARTIFACT[:5000], f"is 5,000 bytes, not the {len(DEMO_ARTIFACT):,} announced"),
    (DEMO_ARTIFACT + b"more", f"more than the {len(DEMO_ARTIFACT):,} bytes announced"),
])
def test_a_wrong_download_is_refused_and_nothing_stored(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served: bytes, message: str) -> None:
    result = get_model_run(monkeypatch, tmp_path / "pack", fake_api(served))
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "pack").exists()


def test_a_trickling_download_stops_at_its_deadline(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """A server that sends a byte every 50 ms (never silent for a whole --timeout) cannot hold
    the tool: the download has a deadline of its own (--timeout plus the file at 10 kB/s)."""
    import asyncio

    import cassava_survey.api
    from cassava_survey.offline import download, fetch

    monkeypatch.setattr(cassava_survey.api, "http_client", fake_api(DEMO_ARTIFACT,
                                                                     trickle=0.05))

    async def run() -> None:
        async with cassava_survey.api.http_client(1.0) as http:
            meta, url = await fetch(http, "http://api")
            await download(http, meta, url, deadline=0.3)

    with pytest.raises(OfflineError, match=r"did not finish in 0\.3 s"):
        asyncio.run(run())


# --- the reference run of the bundled demo's file against the model server (REST) ------------

def test_the_demo_file_gives_the_model_servers_answers(
        demo_model_server, pack: Path, leaf_photo_paths: list[Path]) -> None:
    """ai-edge-litert in a fresh interpreter (no TensorFlow) on the fixture photos, each through
    the API's preprocessing, against the demo SavedModel served by scripts/model-server."""
    import httpx

    from app.imaging import image_to_tensor

    device = device_probabilities(pack, leaf_photo_paths)
    for photo in leaf_photo_paths:
        tensor = image_to_tensor(photo.read_bytes(), height=150, width=150,
                                 max_pixels=50_000_000)
        reply = httpx.post(f"{demo_model_server.rest_url}/v1/models/cassava:predict",
                           json={"instances": tensor.tolist()}, timeout=30)
        assert reply.status_code == 200, reply.text
        (server,) = reply.json()["predictions"]
        on_phone = device[photo.name]
        assert int(np.argmax(on_phone)) == int(np.argmax(server)), photo.name
        assert float(np.abs(np.subtract(on_phone, server)).max()) <= 0.02, photo.name
