"""Finding the photos to send, and what their EXIF says about when and where they were taken."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

# The API takes JPEG and PNG, recognised by their first bytes (as the API does): anything else
# is skipped here instead of being uploaded only to be refused.
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}

# EXIF 2.3 tags: the Exif and GPS sub-IFDs, and the fields read from them.
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME, _DATETIME_ORIGINAL, _OFFSET_ORIGINAL = 0x0132, 0x9003, 0x9011
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4


@dataclass(frozen=True)
class Photo:
    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """Identifies this photo in the resume file: the same path with other bytes is new."""
        return f"{self.path.resolve()}|{self.size}|{self.mtime_ns}"


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Exif:
    taken_at: str | None = None  # ISO 8601, with the UTC offset when the camera wrote one
    latitude: float | None = None
    longitude: float | None = None


def image_kind(head: bytes) -> str | None:
    """'JPEG' or 'PNG' from a file's first bytes, else None."""
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def find_photos(arguments: Iterable[Path]) -> tuple[list[Photo], list[Skipped]]:
    """Files as given and folders walked (sorted, hidden entries ignored), split into photos to
    send and files skipped with the reason. A path given twice is sent once."""
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for argument in arguments:
        if argument.is_dir():
            candidates = sorted(path for path in argument.rglob("*") if path.is_file() and not any(
                part.startswith(".") for part in path.relative_to(argument).parts))
        elif argument.is_file():
            candidates = [argument]
        else:
            skipped.append(Skipped(argument, "no such file or folder"))
            continue
        for path in candidates:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                with path.open("rb") as file:
                    head = file.read(8)
                    stat = os.fstat(file.fileno())
            except OSError as error:
                skipped.append(Skipped(path, f"unreadable: {error.strerror}"))
                continue
            if image_kind(head) is None:
                skipped.append(Skipped(path, "not a JPEG or PNG photo"))
            else:
                photos.append(Photo(path, stat.st_size, stat.st_mtime_ns))
    return photos, skipped


def read_exif(path: Path) -> Exif:
    """Time taken and GPS position from the photo's EXIF header (no pixel is decoded). Missing
    or damaged EXIF gives empty fields, never an error: the photo is still worth diagnosing."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            details = exif.get_ifd(_EXIF_IFD)
            gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # Pillow reports damaged files through many exception types
        return Exif()
    when = details.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
    latitude = gps_degrees(gps.get(_LAT), gps.get(_LAT_REF), limit=90)
    longitude = gps_degrees(gps.get(_LON), gps.get(_LON_REF), limit=180)
    if latitude is None or longitude is None:  # half a position is no position
        latitude = longitude = None
    return Exif(taken_at=exif_datetime(when, details.get(_OFFSET_ORIGINAL)),
                latitude=latitude, longitude=longitude)


def exif_datetime(value: object, offset: object = None) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" (+ OffsetTime "+03:00") -> ISO 8601; None if absent or bad."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.strptime(value.strip().rstrip("\0"), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    text = when.isoformat()
    if isinstance(offset, str):
        try:
            return datetime.fromisoformat(f"{text}{offset.strip().rstrip(chr(0))}").isoformat()
        except ValueError:
            pass
    return text


def gps_degrees(dms: object, ref: object, *, limit: float) -> float | None:
    """EXIF (degrees, minutes, seconds) rationals and a reference (N/S for a latitude, limit 90;
    E/W for a longitude, limit 180) -> signed decimal degrees (6 decimals, ~0.1 m); None when
    absent, malformed or out of range: degrees within the limit, minutes and seconds in [0, 60)
    (a "10 deg 999 min" would otherwise pass as 26.65 deg, a real but wrong point)."""
    if not isinstance(dms, Sequence) or len(dms) != 3 or not isinstance(ref, str):
        return None
    try:
        degrees, minutes, seconds = (float(part) for part in dms)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (0 <= degrees <= limit and 0 <= minutes < 60 and 0 <= seconds < 60):
        return None  # NaN fails every comparison too
    value = degrees + minutes / 60 + seconds / 3600
    reference = ref.strip().rstrip("\0").upper()
    if reference not in (("N", "S") if limit == 90 else ("E", "W")) or value > limit:
        return None
    return round(-value if reference in ("S", "W") else value, 6)
