"""The summary of a results CSV (pure)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from cassava_survey.results import Row
from cassava_survey.summary import PlotUnavailable, area_of, plot, render, summarise

CMD, CBSD = "Cassava Mosaic Disease (CMD)", "Cassava Brown Streak Disease (CBSD)"


def row(code: str | None, *, lat: float | None = None, lon: float | None = None,
        low: bool = False) -> Row:
    name = {"CMD": CMD, "CBSD": CBSD}.get(code or "")
    return Row(file="x.jpg", latitude=lat, longitude=lon, prediction=name, code=code,
               low_confidence=None if code is None else low,
               error=None if code else "truncated_image")


ROWS = [row("CMD", lat=-0.11, lon=34.76), row("CMD", lat=-0.12, lon=34.77, low=True),
        row("CBSD", lat=-3.63, lon=39.85), row("CMD"), row(None)]


def test_counts_share_and_areas() -> None:
    summary = summarise(ROWS, cell=0.1)
    assert (summary.photos, summary.diagnosed, summary.failed) == (5, 4, 1)
    assert summary.per_disease == {"CMD": 3, "CBSD": 1}
    assert summary.low_confidence_share == 0.25
    assert summary.per_area == {"-0.2,34.7": {"CMD": 2}, "-3.7,39.8": {"CBSD": 1}}
    assert summary.unlocated == 1


def test_rendered_tables() -> None:
    text = render(summarise(ROWS))
    assert "5 photos: 4 diagnosed, 1 failed" in text
    assert f"{CMD:<40}       3  75.0%" in text
    assert "low confidence: 1 of 4 (25.0%)" in text
    assert "-0.2,34.7                     2        0        2" in text


def test_no_positions_no_area_table() -> None:
    text = render(summarise([row("CMD"), row("CBSD")]))
    assert "per area" not in text
    assert "no photo has a GPS position" in text  # said, not left to be guessed


def test_one_photo_is_singular() -> None:
    assert render(summarise([row("CMD")])).startswith("1 photo: 1 diagnosed")


@pytest.mark.parametrize(("lat", "lon", "cell", "area"), [
    (-0.11, 34.76, 0.1, "-0.2,34.7"), (1.0, 2.0, 1, "1,2"), (0.049, -0.051, 0.05, "0.00,-0.10")])
def test_area_of(lat: float, lon: float, cell: float, area: str) -> None:
    assert area_of(lat, lon, cell) == area


@pytest.mark.parametrize("rows", [ROWS, [row("CMD"), row("CBSD")]], ids=["map", "bars"])
def test_plot_writes_a_png(tmp_path: Path, rows: list[Row]) -> None:
    plot(rows, tmp_path / "map.png")
    with Image.open(tmp_path / "map.png") as image:
        assert image.format == "PNG" and image.size == (800, 600)
        assert len(image.convert("RGB").getcolors(2**16) or ()) > 10  # something was drawn


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import` sees when it is absent
    with pytest.raises(PlotUnavailable, match=r"pip install 'cassava-survey\[plot\]'"):
        plot(ROWS, tmp_path / "map.png")
    assert not (tmp_path / "map.png").exists()
