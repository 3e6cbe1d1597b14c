"""Photo in, answer out: real leaf photos through the real stack, small and upright uploads."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.support.paths import leaf_photos
from tests.ui_service.browsing import (
    FIELD,
    PREDICT_PATH,
    UPLOAD_LIMIT,
    Traffic,
    UploadRecorder,
    choose_photo,
    open_page,
    strings,
    wait_for_result,
)
from tests.ui_service.photos import (
    BLUE,
    RED,
    close_to,
    half_transparent_png,
    sideways,
    twelve_megapixel,
)

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.slow]

EN = strings("en")


@pytest.fixture(scope="module")
def big_photo(tmp_path_factory: pytest.TempPathFactory, leaf_photo_paths: list[Path]) -> Path:
    return twelve_megapixel(leaf_photo_paths[0], tmp_path_factory.mktemp("photos") / "12mp.jpg")


def sent_jpeg(sent: UploadRecorder) -> Image.Image:
    """The one photo the page uploaded, decoded."""
    [upload] = sent.uploads()
    _filename, content_type, data = upload.files()[FIELD]
    assert content_type == "image/jpeg"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("photo", leaf_photos(), ids=lambda path: path.stem)
def test_a_real_leaf_photo_shows_the_disease_name(page: Page, ui: str, photo: Path) -> None:
    open_page(page, ui)
    with page.expect_response(lambda r: r.url.endswith(PREDICT_PATH)) as answer:
        choose_photo(page, photo)
    assert answer.value.status == 200
    body = answer.value.json()
    result = wait_for_result(page)

    assert result["name"] == EN[f"class.{body['code']}"]
    assert f"{round(body['confidence'] * 100)}%" in result["confidence"]
    assert result["low"] is body["low_confidence"]
    others = [p for p in body["probabilities"] if p["code"] != body["code"]]
    assert result["others"] == [
        f"{EN['class.' + p['code']]}\n{round(p['probability'] * 100)}%" for p in others]
    assert result["advice"] == EN["advice"][body["code"]]["steps"]
    assert result["sources"] == EN["advice"][body["code"]]["sources"]
    assert page.is_visible("#preview")


def test_a_12_megapixel_photo_goes_up_as_at_most_150_kb(
        page: Page, ui: str, traffic: Traffic, sent: UploadRecorder, big_photo: Path) -> None:
    assert big_photo.stat().st_size > 3_000_000  # what a phone camera saves
    open_page(page, ui)
    choose_photo(page, big_photo)
    wait_for_result(page)

    [upload] = sent.uploads()
    [request] = traffic.uploads()
    assert int(request.all_headers()["content-length"]) == len(upload.body) <= UPLOAD_LIMIT
    photo = sent_jpeg(sent)
    assert photo.format == "JPEG"
    assert photo.size == (512, 384)  # long side 512, aspect kept
    # Re-encoded on a canvas: the camera's EXIF (and any GPS position in it) stays on the phone.
    assert len(photo.getexif()) == 0


def test_exif_orientation_is_applied_before_upload(page: Page, ui: str, sent: UploadRecorder,
                                                   tmp_path: Path) -> None:
    open_page(page, ui)
    choose_photo(page, sideways(tmp_path / "sideways.jpg"))
    wait_for_result(page)

    photo = sent_jpeg(sent).convert("RGB")
    assert photo.size == (200, 400)
    assert close_to(photo.getpixel((100, 50)), RED)
    assert close_to(photo.getpixel((100, 350)), BLUE)
    preview = page.eval_on_selector("#preview", "img => [img.naturalWidth, img.naturalHeight]")
    assert preview == [200, 400]


def test_a_png_goes_up_as_jpeg_with_white_for_transparency(page: Page, ui: str,
                                                           sent: UploadRecorder) -> None:
    open_page(page, ui)
    choose_photo(page, {"name": "leaf.png", "mimeType": "image/png",
                        "buffer": half_transparent_png()})
    wait_for_result(page)

    photo = sent_jpeg(sent).convert("RGB")
    assert photo.size == (300, 200)
    assert close_to(photo.getpixel((50, 100)), (255, 255, 255))
    assert close_to(photo.getpixel((250, 100)), (30, 120, 40))


def test_the_camera_button_asks_for_the_back_camera(page: Page, ui: str,
                                                    leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    with page.expect_file_chooser() as chooser:
        page.click("#take")
    camera = chooser.value.element
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/jpeg,image/png"
    chooser.value.set_files(leaf_photo_paths[1])
    assert wait_for_result(page)["name"]


def test_the_gallery_button_has_no_capture(page: Page, ui: str) -> None:
    open_page(page, ui)
    with page.expect_file_chooser() as chooser:
        page.click("#choose")
    assert chooser.value.element.get_attribute("capture") is None
    assert chooser.value.element.get_attribute("accept") == "image/jpeg,image/png"


def test_a_photo_dropped_on_the_page_is_checked(page: Page, ui: str, traffic: Traffic,
                                                leaf_photo_paths: list[Path]) -> None:
    open_page(page, ui)
    data = base64.b64encode(leaf_photo_paths[2].read_bytes()).decode()
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'leaf.jpg', { type: 'image/jpeg' }));
        const zone = document.getElementById('photo');
        for (const type of ['dragenter', 'dragover', 'drop']) {
            zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true,
                                                     cancelable: true }));
        }
    }""", data)
    assert wait_for_result(page)["name"]
    assert len(traffic.uploads()) == 1


def test_upload_progress_is_shown_and_can_be_cancelled_and_retried(
        page: Page, ui: str, traffic: Traffic, big_photo: Path) -> None:
    open_page(page, ui)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    # A slow uplink (4 KB/s, like a poor 2G/3G link): the upload takes many seconds.
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 100, "downloadThroughput": 50_000, "uploadThroughput": 4_000})
    choose_photo(page, big_photo)

    page.wait_for_function("""() => {
        const value = document.getElementById('progress').value;
        return value > 0 && value < 100;
    }""")
    shown, text = page.evaluate("""() => [document.getElementById('progress').value,
                                          document.getElementById('progress-text').textContent]""")
    assert text == EN["upload.progress"].replace("{percent}", str(shown))
    assert page.get_by_role("progressbar", name=text).is_visible()
    assert page.inner_text("#status") == EN["upload.sending"]

    page.get_by_role("button", name=EN["upload.cancel"]).click()
    page.wait_for_function("() => document.getElementById('error-text').textContent.length > 0")
    assert page.inner_text("#error-text") == EN["upload.cancelled"]
    assert not page.is_visible("#uploading")
    assert not page.is_visible("#result")

    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    page.get_by_role("button", name=EN["action.retry"]).click()
    assert wait_for_result(page)["name"]
    assert page.inner_text("#error-text") == ""
    assert len(traffic.uploads()) == 2
