"""The `cassava-survey` command: `diagnose` photos through the API, `summary` of a results CSV."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import click

from cassava_survey.api import ApiError, SurveyClient
from cassava_survey.photos import Photo, find_photos
from cassava_survey.results import ResumeJournal, read_csv, write_csv, write_geojson
from cassava_survey.summary import PlotUnavailable, plot, render, summarise
from cassava_survey.survey import diagnose_all

MIB = 1024 * 1024


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Diagnose cassava leaf photos through the cassava API and summarise the results."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--api", required=True, metavar="URL",
              help="The API's address, e.g. http://api.service.localhost:8080 "
                   "(*.localhost names go to 127.0.0.1).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The results CSV; the GeoJSON goes beside it (same name, .geojson).")
@click.option("--geojson", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the GeoJSON instead.")
@click.option("--resume-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Finished photos, one JSON line each (default: OUT with .resume.jsonl). "
                   "Run the same command again after an interruption: finished photos are "
                   "not sent again.")
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 16),
              help="Requests in flight at once.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Photos per request (the server's cap, MAX_BATCH_FILES, is 16 by default).")
@click.option("--batch-mib", default=8.0, show_default=True, type=click.FloatRange(0.1),
              help="MiB of photos per request (the server's cap is 16 MiB by default).")
@click.option("--retries", default=5, show_default=True, type=click.IntRange(0, 20),
              help="Retries of a request on 429, 502, 503, 504 or a failed connection.")
@click.option("--timeout", default=120.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for one answer.")
def diagnose(paths: tuple[Path, ...], api: str, out: Path, geojson: Path | None,
             resume_file: Path | None, concurrency: int, batch_size: int, batch_mib: float,
             retries: int, timeout: float) -> None:
    """Diagnose the photos in PATHS (files, or folders searched recursively)."""
    def retrying(message: str, delay: float) -> None:
        click.echo(f"\nretrying in {delay:.1f} s: {message}", err=True)

    try:
        client = SurveyClient(api, retries=retries, timeout=timeout, connections=concurrency,
                              on_retry=retrying)
    except ApiError as error:
        raise click.UsageError(str(error)) from None
    photos, skipped = find_photos(paths)
    for item in skipped:
        click.echo(f"skipped {item.path}: {item.reason}", err=True)
    journal = ResumeJournal(resume_file or out.with_suffix(".resume.jsonl"))
    done = sum(1 for photo in photos if photo.key in journal.done)
    click.echo(f"{len(photos)} photos ({done} already done, {len(photos) - done} to send), "
               f"{len(skipped)} files skipped", err=True)
    failure: ApiError | None = None
    with click.progressbar(length=len(photos) - done, label="diagnosing",
                           file=sys.stderr) as bar:  # click 8.5 deprecates get_text_stream
        try:
            asyncio.run(_run(photos, journal, client, batch_size, batch_mib, concurrency,
                             bar.update))
        except ApiError as error:
            failure = error
    rows = [journal.done[photo.key] for photo in photos if photo.key in journal.done]
    geojson = geojson or out.with_suffix(".geojson")
    write_csv(out, rows)
    write_geojson(geojson, rows)
    failed = sum(1 for row in rows if row.error)
    click.echo(f"wrote {out} and {geojson}: {len(rows)} photos, {failed} not usable"
               + (f", {len(skipped)} files skipped" if skipped else ""), err=True)
    if failure is not None:
        raise click.ClickException(
            f"stopped: {failure}\n{len(rows)} of {len(photos)} photos done; run the same "
            f"command again to continue (finished photos are in {journal.path}).")


async def _run(photos: list[Photo], journal: ResumeJournal, client: SurveyClient,
               batch_size: int, batch_mib: float, concurrency: int,
               progress: Callable[[int], None]) -> None:
    try:
        await diagnose_all(photos, journal, client, max_files=batch_size,
                           max_bytes=int(batch_mib * MIB), concurrency=concurrency,
                           progress=progress)
    finally:
        await client.aclose()


@main.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cell", default=0.1, show_default=True, type=click.FloatRange(0.0001, 90),
              help="Size in degrees of the square areas of the per-area table.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw a PNG (needs matplotlib: pip install 'cassava-survey[plot]').")
def summary(results: Path, cell: float, plot_path: Path | None) -> None:
    """Counts per disease, low-confidence share and per-area table of a results CSV."""
    try:
        rows = read_csv(results)
    except (ValueError, UnicodeDecodeError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(render(summarise(rows, cell=cell)))
    if plot_path is not None:
        try:
            plot(rows, plot_path)
        except PlotUnavailable as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"wrote {plot_path}", err=True)
