"""The `cassava-survey` command: `diagnose` photos through the API, `summary` of a results CSV."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import click

from cassava_survey.api import ApiError, SurveyClient
from cassava_survey.offline import OfflineError, OfflineModel, fetch_model, get_model, load_pack
from cassava_survey.photos import Photo, find_photos
from cassava_survey.results import ResumeJournal, read_csv, write_csv, write_geojson
from cassava_survey.summary import PlotUnavailable, plot, render, summarise
from cassava_survey.survey import diagnose_all, diagnose_offline
from cassava_survey.wording import counted

MIB = 1024 * 1024


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Diagnose cassava leaf photos through the cassava API (or offline, on this computer) and
    summarise the results."""


# Every command that reaches the API over HTTPS takes the same option.
ca_cert_option = click.option(
    "--ca-cert", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="Trust this root (PEM) instead of the system's CAs, for an https:// address whose "
         "certificate comes from a private CA. Certificates are always verified.")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--api", metavar="URL",
              help="The API's address, e.g. https://api.example.org or "
                   "http://api.service.localhost:8080 (*.localhost names go to 127.0.0.1).")
@click.option("--offline-model", metavar="DIR_OR_URL",
              help="Diagnose on this computer, with no network: a model stored by "
                   "`cassava-survey get-model` (its directory or file), or an API URL to fetch "
                   "the served version's on-device model from once (needs the `offline` extra).")
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
@ca_cert_option
def diagnose(paths: tuple[Path, ...], api: str | None, offline_model: str | None, out: Path,
             geojson: Path | None, resume_file: Path | None, concurrency: int, batch_size: int,
             batch_mib: float, retries: int, timeout: float, ca_cert: Path | None) -> None:
    """Diagnose the photos in PATHS (files, or folders searched recursively)."""
    def retrying(message: str, delay: float) -> None:
        click.echo(f"\nretrying in {delay:.1f} s: {message}", err=True)

    if (api is None) == (offline_model is None):
        raise click.UsageError("give either --api URL (the server answers) or --offline-model "
                               "(this computer answers)")
    client: SurveyClient | None = None
    model: OfflineModel | None = None
    try:
        if api is not None:
            client = SurveyClient(api, retries=retries, timeout=timeout,
                                  connections=concurrency, on_retry=retrying, ca_cert=ca_cert)
        else:
            model = _offline_model(offline_model or "", timeout, ca_cert)
    except ApiError as error:
        raise click.UsageError(str(error)) from None
    except OfflineError as error:
        raise click.ClickException(str(error)) from None
    photos, skipped = find_photos(paths)
    for item in skipped:
        click.echo(f"skipped {item.path}: {item.reason}", err=True)
    journal = ResumeJournal(resume_file or out.with_suffix(".resume.jsonl"))
    done = sum(1 for photo in photos if photo.key in journal.done)
    click.echo(f"{counted(len(photos), 'photo')} ({done} already done, {len(photos) - done} to "
               f"send), {counted(len(skipped), 'file')} skipped", err=True)
    failure: ApiError | OfflineError | None = None
    with click.progressbar(length=len(photos) - done, label="diagnosing",
                           file=sys.stderr) as bar:  # click 8.5 deprecates get_text_stream
        try:
            if client is not None:
                asyncio.run(_run(photos, journal, client, batch_size, batch_mib, concurrency,
                                 bar.update))
            elif model is not None:
                diagnose_offline(photos, journal, model, progress=bar.update)
        except (ApiError, OfflineError) as error:
            failure = error
    rows = [journal.done[photo.key] for photo in photos if photo.key in journal.done]
    geojson = geojson or out.with_suffix(".geojson")
    write_csv(out, rows)
    write_geojson(geojson, rows)
    failed = sum(1 for row in rows if row.error)
    click.echo(f"wrote {out} and {geojson}: {counted(len(rows), 'photo')}, {failed} not usable"
               + (f", {counted(len(skipped), 'file')} skipped" if skipped else ""), err=True)
    located = sum(1 for row in rows if row.latitude is not None and row.longitude is not None)
    if rows and not located:
        click.echo(f"no photo has a GPS position, so {geojson} places none on a map (turn on the "
                   "camera's location setting to record where each photo is taken)", err=True)
    if failure is not None:
        raise click.ClickException(
            f"stopped: {failure}\n{len(rows)} of {len(photos)} photos done; run the same "
            f"command again to continue (finished photos are in {journal.path}).")


def _offline_model(location: str, timeout: float, ca_cert: Path | None) -> OfflineModel:
    """A stored pack, or the API's served version fetched now (http:// or https://)."""
    if location.startswith(("http://", "https://")):
        model = asyncio.run(fetch_model(location, timeout, ca_cert))
    elif ca_cert is not None:
        raise ApiError("--ca-cert is for an https:// address; a stored model needs no certificate")
    else:
        model = load_pack(Path(location))
    demo = " (a DEMO model: do not act on its answers)" if model.meta.demo else ""
    click.echo(f"offline model: {model.meta.name} version {model.meta.version}, "
               f"SHA-256 {model.meta.sha256[:12]}... verified{demo}", err=True)
    return model


@main.command("get-model")
@click.option("--api", required=True, metavar="URL",
              help="The API's address, e.g. http://api.service.localhost:8080.")
@click.option("--out", "directory", default=Path("cassava-model"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where to store it (model.tflite and model.json).")
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to wait for each answer.")
@ca_cert_option
def get_model_command(api: str, directory: Path, timeout: float, ca_cert: Path | None) -> None:
    """Download the served model's on-device version once (verified by its SHA-256), for
    `diagnose --offline-model DIR` where there is no network."""
    try:
        meta, downloaded = asyncio.run(get_model(api, directory, timeout, ca_cert))
    except ApiError as error:  # --ca-cert that is not a readable certificate
        raise click.UsageError(str(error)) from None
    except OfflineError as error:
        raise click.ClickException(str(error)) from None
    what = "stored" if downloaded else "already stored"
    demo = " It is a DEMO model: do not act on its answers." if meta.demo else ""
    click.echo(f"{what} {meta.name} version {meta.version} ({meta.bytes:,} bytes, SHA-256 "
               f"{meta.sha256}) in {directory}; diagnose offline with "
               f"--offline-model {directory}.{demo}")


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
