"""One row per photo: built from the API's answer and the photo's EXIF, written as CSV and
GeoJSON, and journalled in the resume file as each batch finishes."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from cassava_survey.photos import Exif


@dataclass(frozen=True)
class Row:
    """What the survey learnt about one photo; `error` is set instead of the prediction when the
    API could not use the photo (its problem code, e.g. truncated_image)."""

    file: str
    taken_at: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    prediction: str | None = None  # display name of the top class
    code: str | None = None  # label code of the top class
    confidence: float | None = None
    low_confidence: bool | None = None
    entropy: float | None = None
    model: str | None = None
    model_version: int | None = None
    error: str | None = None
    error_detail: str | None = None
    source: str | None = None  # who answered: "server" (the API) or "device" (--offline-model)


COLUMNS = tuple(field.name for field in fields(Row))
# Columns a results CSV of an older cassava-survey lacks (read as empty).
LATER_COLUMNS = frozenset({"source"})


def row_from_result(file: str, result: Mapping[str, Any], exif: Exif,
                    source: str = "server") -> Row:
    """One entry of the batch endpoint's `results` (a prediction or a problem), from the API
    (`server`) or the offline model (`device`, same shape) -> a row."""
    place: dict[str, Any] = {"file": file, "taken_at": exif.taken_at, "latitude": exif.latitude,
                             "longitude": exif.longitude, "source": source}
    prediction = result.get("prediction")
    if isinstance(prediction, Mapping):
        model = prediction.get("model") or {}
        return Row(**place, prediction=prediction.get("prediction"), code=prediction.get("code"),
                   confidence=prediction.get("confidence"),
                   low_confidence=prediction.get("low_confidence"),
                   entropy=prediction.get("entropy"), model=model.get("name"),
                   model_version=model.get("version"))
    problem = result.get("problem") or {}
    return Row(**place, error=str(problem.get("code") or "error"),
               error_detail=problem.get("detail"))


# A text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection"):
# "=HYPERLINK(...)" as a photo's file name, or in a value a server returns, would run when the
# CSV is opened. Such cells are written with a leading apostrophe, which spreadsheets show as
# text; read_csv takes it off again. A cell that itself starts with the apostrophe gets one more,
# so every text value comes back exactly.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
TEXT_GUARD = "'"


def neutralised(text: str) -> str:
    """A text cell a spreadsheet cannot read as a formula."""
    return TEXT_GUARD + text if text.startswith((*FORMULA_PREFIXES, TEXT_GUARD)) else text


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    """The rows as CSV (empty cells for missing values, text cells neutralised), written
    atomically."""
    def cell(value: object) -> object:
        if value is None:
            return ""
        return neutralised(value) if isinstance(value, str) else value

    def write(file: Any) -> None:
        # RFC 4180's CRLF: with a bare LF terminator Python's csv leaves a CR inside a cell
        # unquoted, and the row breaks in two when read back.
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: cell(value) for key, value in asdict(row).items()})
    _atomic_write(path, write, newline="")


def read_csv(path: Path) -> list[Row]:
    """Rows written by write_csv, with their types restored."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = set(COLUMNS) - set(reader.fieldnames or ()) - LATER_COLUMNS
        if missing:
            raise ValueError(f"{path} is not a cassava-survey CSV "
                             f"(no {', '.join(sorted(missing))})")
        return [_typed(record) for record in reader]


def _typed(record: Mapping[str, str]) -> Row:
    def value(name: str, kind: type) -> Any:
        text = record.get(name) or ""
        if text == "":
            return None
        if kind is bool:
            return text == "True"
        if kind is str:
            return text.removeprefix(TEXT_GUARD)
        return kind(text)

    kinds = {"latitude": float, "longitude": float, "confidence": float, "entropy": float,
             "low_confidence": bool, "model_version": int}
    return Row(**{name: value(name, kinds.get(name, str)) for name in COLUMNS})


def geojson(rows: Iterable[Row]) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection: a Point per photo with a GPS position, geometry null for
    the others (so every photo is in the file), every column in `properties`."""
    features = []
    for row in rows:
        located = row.latitude is not None and row.longitude is not None
        geometry = {"type": "Point", "coordinates": [row.longitude, row.latitude]} \
            if located else None
        features.append({"type": "Feature", "geometry": geometry, "properties": asdict(row)})
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: Path, rows: Iterable[Row]) -> None:
    collection = geojson(rows)
    _atomic_write(path, lambda file: json.dump(collection, file, indent=1))


def _atomic_write(path: Path, write: Any, newline: str | None = None) -> None:
    """Write to a temporary file beside `path`, fsync, rename, fsync the directory: readers and a
    crash see the old file or the new one, never half of one (the model repository's pattern,
    model.service/training/repository.py write_json)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; an output is for others too
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class ResumeJournal:
    """The resume file: one JSON line per finished photo ({"key", "row"}), appended and synced
    to disk after every batch, so an interrupted run loses at most the batches in flight."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, Row] = {}
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        # A run killed while writing leaves a partial last line: the next entry starts afresh.
        self._broken_tail = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                self.done[entry["key"]] = Row(**entry["row"])
            except (ValueError, KeyError, TypeError):
                continue

    def record(self, finished: list[tuple[str, Row]]) -> None:
        lines = [json.dumps({"key": key, "row": asdict(row)}) + "\n" for key, row in finished]
        if self._broken_tail:
            lines.insert(0, "\n")
            self._broken_tail = False
        with self.path.open("a", encoding="utf-8") as file:
            file.writelines(lines)
            file.flush()
            os.fsync(file.fileno())
        self.done.update(finished)
