"""Finding photos and reading their EXIF (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from cassava_survey.photos import exif_datetime, find_photos, gps_degrees, image_kind, read_exif
from tests.client.conftest import KILIFI, KISUMU, SurveyFolder
from tests.support.paths import leaf_photos


def test_folders_are_walked_and_non_photos_skipped_with_a_reason(
        survey_folder: SurveyFolder) -> None:
    photos, skipped = find_photos([survey_folder.root])
    assert sorted(p.path for p in photos) == sorted(survey_folder.photos.values())
    assert [(s.path, s.reason) for s in skipped] == [
        (survey_folder.others["notes.txt"], "not a JPEG or PNG photo")]


def test_a_photo_named_twice_is_sent_once_and_missing_paths_are_listed(
        survey_folder: SurveyFolder, tmp_path: Path) -> None:
    photo = survey_folder.photos["plain.jpg"]
    photos, skipped = find_photos([photo, survey_folder.root, tmp_path / "nope"])
    assert [p.path for p in photos].count(photo) == 1
    assert (tmp_path / "nope", "no such file or folder") in [(s.path, s.reason) for s in skipped]


def test_the_resume_key_changes_with_the_bytes(survey_folder: SurveyFolder) -> None:
    path = survey_folder.photos["plain.jpg"]
    (before,), _ = find_photos([path])
    path.write_bytes(path.read_bytes() + b"\0")
    (after,), _ = find_photos([path])
    assert before.key != after.key and str(path.resolve()) in before.key


def test_exif_time_and_gps_are_read(survey_folder: SurveyFolder) -> None:
    kisumu = read_exif(survey_folder.photos["kisumu.jpg"])
    assert kisumu.taken_at == "2024-05-01T09:30:15+03:00"
    assert (kisumu.latitude, kisumu.longitude) == pytest.approx(KISUMU, abs=1e-6)
    kilifi = read_exif(survey_folder.photos["kilifi.jpg"])
    assert kilifi.taken_at == "2024-05-02T14:00:00"  # no offset written: local time as is
    assert (kilifi.latitude, kilifi.longitude) == pytest.approx(KILIFI, abs=1e-6)


@pytest.mark.parametrize("name", ["plain.jpg", "cut.jpg"])
def test_photos_without_usable_exif_give_empty_fields(survey_folder: SurveyFolder,
                                                      name: str) -> None:
    exif = read_exif(survey_folder.photos[name])
    assert (exif.taken_at, exif.latitude, exif.longitude) == (None, None, None)


def test_a_position_with_one_bad_coordinate_is_no_position(tmp_path: Path) -> None:
    # Issue 20: an out-of-range latitude left the longitude in the CSV (half a point).
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(10), IFDRational(999), IFDRational(0))
    gps[3], gps[4] = "E", (IFDRational(36), IFDRational(49), IFDRational(12))
    path = tmp_path / "bad-gps.jpg"
    with Image.open(leaf_photos()[0]) as image:
        image.save(path, exif=exif)
    assert (read_exif(path).latitude, read_exif(path).longitude) == (None, None)


def test_a_non_image_gives_empty_fields(survey_folder: SurveyFolder) -> None:
    assert read_exif(survey_folder.others["notes.txt"]).taken_at is None


@pytest.mark.parametrize(("dms", "ref", "limit", "expected"), [
    ((1, 17, 30.36), "S", 90, -1.291767),
    ((36, 49, 12.34), "E", 180, 36.820094),
    ((36, 49, 12.34), "W\0", 180, -36.820094),
    ((91, 0, 0), "N", 90, None),                       # not a latitude
    ((1, 2), "N", 90, None),                           # malformed
    ((1, 2, 3), "Q", 90, None),                        # unknown reference
    ((IFDRational(1, 0), 0, 0), "N", 90, None),       # zero denominator: NaN
    (None, "N", 90, None),
    ((10, 999, 0), "N", 90, None),                     # minutes >= 60 (was 26.65)
    ((10, 60, 0), "N", 90, None),
    ((10, 0, 60), "N", 90, None),                      # seconds >= 60
    ((90, 0, 0.5), "N", 90, None),                     # past the pole
    ((180, 0, 0), "E", 180, 180.0),
    ((-1, 0, 0), "N", 90, None),                       # the sign is the reference's
    ((10, 0, 0), "E", 90, None),                       # a longitude's reference on a latitude
])
def test_gps_degrees(dms: object, ref: object, limit: float, expected: float | None) -> None:
    assert gps_degrees(dms, ref, limit=limit) == (pytest.approx(expected) if expected else None)


@pytest.mark.parametrize(("value", "offset", "expected"), [
    ("2024:05:01 09:30:15", None, "2024-05-01T09:30:15"),
    ("2024:05:01 09:30:15", "-05:00", "2024-05-01T09:30:15-05:00"),
    ("2024:05:01 09:30:15\0", "junk", "2024-05-01T09:30:15"),
    ("0000:00:00 00:00:00", None, None),               # cameras without a clock write this
    (b"2024", None, None),
])
def test_exif_datetime(value: object, offset: object, expected: str | None) -> None:
    assert exif_datetime(value, offset) == expected


def test_image_kind_by_magic_bytes() -> None:
    assert image_kind(b"\xff\xd8\xff\xe0") == "JPEG"
    assert image_kind(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert image_kind(b"GIF89a") is None
