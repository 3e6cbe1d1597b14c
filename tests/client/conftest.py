"""A survey folder as an extension officer's laptop holds one: photos with and without EXIF GPS,
a sub-folder, a truncated JPEG, a note, a hidden file. Made in tmp from the real leaf photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.support.paths import leaf_photos

# Where and when the "gps" photos were taken: near Kisumu and in Kilifi (Kenya), EXIF-style.
KISUMU = (-0.102345, 34.761234)
KILIFI = (-3.630456, 39.849876)


@dataclass(frozen=True)
class SurveyFolder:
    root: Path
    photos: dict[str, Path]  # name -> path of every JPEG (the truncated one included)
    others: dict[str, Path]  # name -> path of the files that are not photos


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600, 4)
    return IFDRational(degrees), IFDRational(minutes), IFDRational(int(seconds * 10000), 10000)


def save_with_exif(source: Path, target: Path, *, position: tuple[float, float] | None,
                   taken: str | None, offset: str | None = None) -> None:
    """Re-save a photo with a camera-like EXIF block (Exif IFD time, GPS IFD position)."""
    exif = Image.Exif()
    if taken:
        exif.get_ifd(0x8769)[0x9003] = taken
        if offset:
            exif.get_ifd(0x8769)[0x9011] = offset
    if position:
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = ("N" if position[0] >= 0 else "S"), dms(position[0])
        gps[3], gps[4] = ("E" if position[1] >= 0 else "W"), dms(position[1])
    with Image.open(source) as image:
        image.save(target, exif=exif, quality=92)


def make_survey_folder(root: Path) -> SurveyFolder:
    first, second, third = leaf_photos()
    (root / "day2").mkdir(parents=True)
    photos = {
        "kisumu.jpg": root / "kisumu.jpg", "kilifi.jpg": root / "day2" / "kilifi.jpg",
        "plain.jpg": root / "plain.jpg", "cut.jpg": root / "day2" / "cut.jpg",
    }
    save_with_exif(first, photos["kisumu.jpg"], position=KISUMU, taken="2024:05:01 09:30:15",
                   offset="+03:00")
    save_with_exif(second, photos["kilifi.jpg"], position=KILIFI, taken="2024:05:02 14:00:00")
    photos["plain.jpg"].write_bytes(third.read_bytes())  # no EXIF at all
    data = first.read_bytes()
    photos["cut.jpg"].write_bytes(data[: len(data) // 3])  # a transfer that broke off
    others = {"notes.txt": root / "notes.txt"}
    others["notes.txt"].write_text("plot 7: yellow mosaic on most plants\n")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: ignored, not even listed
    return SurveyFolder(root, photos, others)


@pytest.fixture
def survey_folder(tmp_path: Path) -> SurveyFolder:
    return make_survey_folder(tmp_path / "survey")
