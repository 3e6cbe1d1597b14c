"""What a results CSV says: counts per disease, the low-confidence share, a per-area table, and
an optional plot. Pure, except plot()."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cassava_survey.results import Row
from cassava_survey.wording import counted


@dataclass(frozen=True)
class Summary:
    photos: int
    diagnosed: int
    failed: int
    low_confidence: int
    per_disease: dict[str, int]  # label code -> photos, most frequent first
    names: dict[str, str]  # label code -> display name
    # area label ("lat,lon" of the cell's south-west corner) -> label code -> photos
    per_area: dict[str, dict[str, int]] = field(default_factory=dict)
    unlocated: int = 0  # diagnosed photos without a GPS position

    @property
    def low_confidence_share(self) -> float:
        return self.low_confidence / self.diagnosed if self.diagnosed else 0.0


def area_of(latitude: float, longitude: float, cell: float) -> str:
    """The grid cell (`cell` degrees square) holding a position, named by its south-west corner."""
    decimals = max(0, -math.floor(math.log10(cell))) if cell < 1 else 0
    south = math.floor(latitude / cell) * cell
    west = math.floor(longitude / cell) * cell
    return f"{south:.{decimals}f},{west:.{decimals}f}"


def summarise(rows: Sequence[Row], *, cell: float = 0.1) -> Summary:
    if cell <= 0:
        raise ValueError("the area cell size must be positive")
    diagnosed = [row for row in rows if row.code is not None]
    per_disease = Counter(str(row.code) for row in diagnosed)
    per_area: dict[str, Counter[str]] = defaultdict(Counter)
    for row in diagnosed:
        if row.latitude is not None and row.longitude is not None:
            per_area[area_of(row.latitude, row.longitude, cell)][row.code] += 1  # type: ignore[index]
    return Summary(
        photos=len(rows), diagnosed=len(diagnosed), failed=len(rows) - len(diagnosed),
        low_confidence=sum(1 for row in diagnosed if row.low_confidence),
        per_disease=dict(sorted(per_disease.items(), key=lambda item: (-item[1], item[0]))),
        names={row.code: row.prediction or row.code for row in diagnosed},  # type: ignore[misc]
        per_area={area: dict(counts) for area, counts in sorted(per_area.items())},
        unlocated=sum(1 for row in diagnosed if row.latitude is None or row.longitude is None))


def render(summary: Summary) -> str:
    """The summary as plain-text tables."""
    lines = [f"{counted(summary.photos, 'photo')}: {summary.diagnosed} diagnosed, "
             f"{summary.failed} failed",
             "", "disease                                   photos  share"]
    for code, count in summary.per_disease.items():
        lines.append(f"{summary.names[code][:40]:<40} {count:>7} {count / summary.diagnosed:>6.1%}")
    lines += ["", f"low confidence: {summary.low_confidence} of {summary.diagnosed} "
                  f"({summary.low_confidence_share:.1%}) - retake or check these photos"]
    if summary.per_area:
        codes = list(summary.per_disease)
        lines += ["", "per area (south-west corner lat,lon)",
                  f"{'area':<22}" + "".join(f"{code:>9}" for code in codes) + f"{'total':>9}"]
        for area, counts in summary.per_area.items():
            lines.append(f"{area:<22}" + "".join(f"{counts.get(code, 0):>9}" for code in codes)
                         + f"{sum(counts.values()):>9}")
        if summary.unlocated:
            lines.append(f"(and {summary.unlocated} diagnosed photos without a GPS position)")
    elif summary.diagnosed:
        lines += ["", "no per-area table: no photo has a GPS position (turn on the camera's "
                      "location setting to record where each photo is taken)"]
    return "\n".join(lines)


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def plot(rows: Sequence[Row], path: Path) -> None:
    """A PNG: positions coloured by diagnosis when photos have GPS, else a bar chart of counts."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'cassava-survey[plot]'") \
            from None
    diagnosed = [row for row in rows if row.code is not None]
    located = [(str(row.code), row.longitude, row.latitude) for row in diagnosed
               if row.latitude is not None and row.longitude is not None]
    figure, axes = plt.subplots(figsize=(8, 6))
    if located:
        for code in sorted({code for code, _, _ in located}):
            points = [(x, y) for other, x, y in located if other == code]
            axes.scatter([x for x, _ in points], [y for _, y in points], label=code, s=18)
        axes.set_xlabel("longitude")
        axes.set_ylabel("latitude")
        axes.legend(title="diagnosis")
    else:
        counts = Counter(str(row.code) for row in diagnosed)
        axes.bar(list(counts), list(counts.values()))
        axes.set_ylabel("photos")
    axes.set_title("cassava survey")
    figure.savefig(path, dpi=100)
    plt.close(figure)
