"""A survey run: which photos still need an answer, in which batches, sent how many at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from cassava_survey.api import SurveyClient
from cassava_survey.offline import OfflineModel
from cassava_survey.photos import Photo, read_exif
from cassava_survey.results import ResumeJournal, Row, row_from_result


def plan_batches(photos: Sequence[Photo], *, max_files: int, max_bytes: int
                 ) -> list[list[Photo]]:
    """Consecutive photos grouped into requests of at most `max_files` photos and `max_bytes`
    bytes; a photo larger than `max_bytes` travels alone (the server then says what it thinks)."""
    if max_files < 1 or max_bytes < 1:
        raise ValueError("max_files and max_bytes must be positive")
    batches: list[list[Photo]] = []
    current: list[Photo] = []
    size = 0
    for photo in photos:
        if current and (len(current) == max_files or size + photo.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(photo)
        size += photo.size
    if current:
        batches.append(current)
    return batches


async def diagnose_all(photos: Sequence[Photo], journal: ResumeJournal, client: SurveyClient, *,
                       max_files: int, max_bytes: int, concurrency: int,
                       progress: Callable[[int], None]) -> None:
    """Send every photo the journal does not have yet, `concurrency` requests at a time; each
    finished batch goes to the journal at once. The first ApiError stops the run (requests in
    flight are cancelled; what finished stays in the journal)."""
    pending = [photo for photo in photos if photo.key not in journal.done]
    semaphore = asyncio.Semaphore(concurrency)

    async def send(batch: list[Photo]) -> None:
        async with semaphore:
            results = await client.diagnose(batch)
            exifs = await asyncio.to_thread(lambda: [read_exif(photo.path) for photo in batch])
        rows: list[tuple[str, Row]] = [
            (photo.key, row_from_result(str(photo.path), result, exif))
            for photo, result, exif in zip(batch, results, exifs, strict=True)]
        journal.record(rows)
        progress(len(batch))

    try:
        async with asyncio.TaskGroup() as group:
            for batch in plan_batches(pending, max_files=max_files, max_bytes=max_bytes):
                group.create_task(send(batch))
    except* Exception as failures:  # the first failure is the one to report
        raise failures.exceptions[0] from None


def diagnose_offline(photos: Sequence[Photo], journal: ResumeJournal, model: OfflineModel, *,
                     progress: Callable[[int], None], batch: int = 8) -> None:
    """Answer every photo the journal does not have yet with the offline model, on this
    computer; every `batch` photos go to the journal (an interruption loses at most those)."""
    pending = [photo for photo in photos if photo.key not in journal.done]
    for start in range(0, len(pending), batch):
        rows: list[tuple[str, Row]] = []
        for photo in pending[start:start + batch]:
            try:
                data = photo.path.read_bytes()
            except OSError as error:
                result = {"problem": {"code": "unreadable_file", "detail": str(error)}}
            else:
                result = model.diagnose(data)
            rows.append((photo.key, row_from_result(str(photo.path), result,
                                                    read_exif(photo.path), source="device")))
        journal.record(rows)
        progress(len(rows))
