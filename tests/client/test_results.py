"""Rows, CSV, GeoJSON and the resume journal (no server)."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import pytest

from cassava_survey.photos import Exif
from cassava_survey.results import (
    COLUMNS,
    ResumeJournal,
    Row,
    geojson,
    read_csv,
    row_from_result,
    write_csv,
    write_geojson,
)

PREDICTION = {"prediction": {
    "prediction": "Cassava Mosaic Disease (CMD)", "code": "CMD", "confidence": 0.93,
    "low_confidence": False, "entropy": 0.21, "probabilities": [],
    "model": {"name": "cassava", "version": 3}, "request_id": "r"}, "index": 0, "filename": "a"}
PROBLEM = {"problem": {"type": "tag:cassava-api,2025:problem:truncated_image", "status": 400,
                       "title": "Truncated image", "code": "truncated_image",
                       "detail": "The uploaded JPEG image is truncated."},
           "index": 1, "filename": "b"}
HERE = Exif(taken_at="2024-05-01T09:30:15+03:00", latitude=-0.1, longitude=34.7)


def test_a_prediction_becomes_a_row() -> None:
    assert row_from_result("a.jpg", PREDICTION, HERE) == Row(
        file="a.jpg", taken_at="2024-05-01T09:30:15+03:00", latitude=-0.1, longitude=34.7,
        prediction="Cassava Mosaic Disease (CMD)", code="CMD", confidence=0.93,
        low_confidence=False, entropy=0.21, model="cassava", model_version=3, source="server")


def test_an_offline_answer_says_it_came_from_the_device() -> None:
    assert row_from_result("a.jpg", PREDICTION, HERE, source="device").source == "device"


def test_a_csv_of_an_older_version_without_source_still_reads(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", [row_from_result("a.jpg", PREDICTION, HERE)])
    lines = (tmp_path / "r.csv").read_text().splitlines()
    (tmp_path / "r.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    (row,) = read_csv(tmp_path / "r.csv")
    assert (row.code, row.source) == ("CMD", None)


def test_a_problem_becomes_a_row_with_the_error() -> None:
    row = row_from_result("b.jpg", PROBLEM, Exif())
    assert (row.error, row.error_detail, row.code) == (
        "truncated_image", "The uploaded JPEG image is truncated.", None)


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = [row_from_result("a.jpg", PREDICTION, HERE), row_from_result("b,c.jpg", PROBLEM, Exif())]
    write_csv(tmp_path / "r.csv", rows)
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_csv(tmp_path / "r.csv") == rows


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(tmp_path: Path) -> None:
    # Issue 20: OWASP's CSV injection. File names and the values a server returns are text; a
    # leading = + - @ tab or CR made a spreadsheet run them. Numbers (a negative latitude) stay.
    hostile = {"prediction": {**PREDICTION["prediction"], "code": "+CMD",
                              "prediction": "@SUM(1+1)*cmd|' /C calc'!A0",
                              "model": {"name": "\tcassava", "version": 3}}}
    rows = [row_from_result("=HYPERLINK(\"http://x\",\"a\").jpg", hostile, HERE),
            row_from_result("-2+3.jpg", PROBLEM, Exif(latitude=-1.5, longitude=-36.8)),
            row_from_result("\rb.jpg", PROBLEM, Exif()),
            row_from_result("'=already quoted.jpg", PROBLEM, Exif())]
    write_csv(tmp_path / "r.csv", rows)
    with (tmp_path / "r.csv").open(newline="") as file:
        cells = [cell for record in csv.reader(file) for cell in record]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))]
    assert [cell for cell in cells if cell.startswith("-")] == ["-0.1", "-1.5", "-36.8"]
    assert "'=HYPERLINK(\"http://x\",\"a\").jpg" in cells and "'-2+3.jpg" in cells
    assert read_csv(tmp_path / "r.csv") == rows  # every value comes back exactly


def test_outputs_reach_the_disk_before_they_replace_the_old_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is synced before the rename and its directory after it (a crash leaves the old
    output or the whole new one, never an empty file under the final name)."""
    target = tmp_path / "r.csv"
    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("directory" if stat.S_ISDIR(mode) else
                      "file:" + ("replaced" if target.exists() else "before rename"))
        real_fsync(fd)

    def replace(source: str, destination: Path) -> None:
        synced.append("rename")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_csv(target, [row_from_result("a.jpg", PREDICTION, HERE)])
    assert synced == ["file:before rename", "rename", "directory"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_failed_write_keeps_the_old_output_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "r.geojson"
    target.write_text("old")

    class Unserialisable:
        pass

    broken = Row(file="a.jpg", prediction=Unserialisable())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        write_geojson(target, [broken])
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["r.geojson"]


def test_geojson_has_every_photo_and_points_where_known() -> None:
    rows = [row_from_result("a.jpg", PREDICTION, HERE), row_from_result("b.jpg", PROBLEM, Exif())]
    collection = json.loads(json.dumps(geojson(rows)))  # plain JSON all the way down
    assert collection["type"] == "FeatureCollection"
    first, second = collection["features"]
    assert first["geometry"] == {"type": "Point", "coordinates": [34.7, -0.1]}  # lon, lat
    assert first["properties"]["code"] == "CMD"
    assert second["geometry"] is None and second["properties"]["error"] == "truncated_image"


def test_the_journal_survives_a_run_killed_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "r.resume.jsonl"
    journal = ResumeJournal(path)
    journal.record([("k1", Row(file="a.jpg", code="CMD"))])
    with path.open("a") as file:
        file.write('{"key": "k2", "row": {"fi')  # the kill came here
    resumed = ResumeJournal(path)
    assert set(resumed.done) == {"k1"}
    resumed.record([("k3", Row(file="c.jpg", code="CBB"))])
    assert set(ResumeJournal(path).done) == {"k1", "k3"}
