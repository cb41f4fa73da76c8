"""The durable local spool: clicks the database cannot take right now (down, or the writer
saturated) are appended to a file and replayed later, idempotently by event id.

Each process appends JSON lines to its own segment `clicks-<pid>-<ns>.open`; appends are
written and fsynced in groups (at most every `flush_ms`), and `append` returns only once
its line is on disk, so a click answered with its redirect is durable. A segment is closed
(renamed `.ready`) when it is older than `rotate_seconds`, on shutdown, or when this
process replays. Replay claims a ready segment by renaming it (`.replaying-<pid>`), applies
it in chunks, and deletes it; lines that can never be applied (unreadable, unknown
campaign) go to `rejected/`, kept for a human, never dropped silently. Segments left
`.open` or `.replaying` by a process that died are replayed too.

A segment's first line names the database its clicks were taken for (`SpoolTarget`): its
id (core/instance.py) and URL. Replay applies a segment only to that database: the one
with that id, or, when the writer never learnt the id (it had not reached its database
yet), the one at that URL. Any other segment moves whole to `rejected/`, with a log line:
in another database, campaign ids from 1 up mean other campaigns. (Segments written before
segments named their database have no such line, and are replayed as before.)
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from tallyhub.clicks.service.agents import classify
from tallyhub.clicks.service.clicks import Classifier, apply_clicks
from tallyhub.clicks.service.events import ClickEvent
from tallyhub.core.columns import utcnow
from tallyhub.core.db import Database
from tallyhub.core.instance import database_id, masked_url

log = structlog.get_logger(__name__)

OPEN, READY, REPLAYING = ".open", ".ready", ".replaying-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class SpoolStats:
    segments: int
    events: int


_HEADER_KEY = "spool"
_HEADER_PREFIX = b'{"' + _HEADER_KEY.encode() + b'"'


@dataclass(frozen=True)
class SpoolTarget:
    """The database a segment's clicks were taken for: its id when the writer knew it,
    and its URL without the password."""

    database_id: str | None
    database: str

    def header(self) -> bytes:
        line = {_HEADER_KEY: 1, "database_id": self.database_id, "database": self.database}
        return json.dumps(line, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def of_header(cls, data: dict[str, object]) -> SpoolTarget:
        found = data.get("database_id")
        return cls(str(found) if found else None, str(data.get("database") or ""))

    def admits(self, current_id: str, current_url: str) -> bool:
        """Whether a segment written for this target may be applied to the database
        `current_id` at `current_url` (masked)."""
        if self.database_id is not None:
            return self.database_id == current_id
        return self.database == current_url


class ClickSpool:
    def __init__(
        self,
        directory: Path,
        *,
        target: SpoolTarget,
        flush_ms: float = 5.0,
        rotate_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.target = target  # named by each new segment's first line
        self.flush_delay = flush_ms / 1000
        self.rotate_seconds = rotate_seconds
        self.clock = clock
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="clicks-spool")

    async def stop(self) -> None:
        """Write what is pending, close the open segment for replay, stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._write_pending()
        await self.rotate()

    async def aim(self, target: SpoolTarget) -> None:
        """Clicks from now on are for `target` (its id was learnt, or it changed): the
        open segment is closed, so that each segment names one database."""
        if target != self.target:
            self.target = target
            await self.rotate()

    # ------------------------------------------------------------ appending

    async def append(self, event: ClickEvent) -> None:
        """Returns once the event's line has been written and fsynced."""
        line = json.dumps(event.to_record(), separators=(",", ":"), ensure_ascii=False)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line.encode() + b"\n", future))
        if self._task is None:
            await self._write_pending()
        else:
            self._wake.set()
        await future

    async def _run(self) -> None:
        while not self._stopping:
            with suppress(TimeoutError):
                async with asyncio.timeout(max(self.rotate_seconds, 0.05)):
                    await self._wake.wait()
            self._wake.clear()
            if self._pending and self.flush_delay > 0 and not self._stopping:
                await asyncio.sleep(self.flush_delay)  # let a group gather
            await self._write_pending()
            if self._path is not None and self.clock() - self._opened_at >= self.rotate_seconds:
                await self.rotate()

    async def _write_pending(self) -> None:
        if not self._pending:
            return
        group, self._pending = self._pending, []
        data = b"".join(line for line, _ in group)
        try:
            async with self._lock:
                await asyncio.to_thread(self._write, data)
        except OSError as error:
            log.error("clicks.spool_write_failed", events=len(group), exc_info=True)
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        for _, future in group:
            if not future.done():
                future.set_result(None)

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._path = self.directory / f"clicks-{os.getpid()}-{time.time_ns()}{OPEN}"
            self._file = open(self._path, "ab")  # noqa: SIM115  (kept open across writes)
            self._opened_at = self.clock()
            self._file.write(self.target.header())
            _fsync_directory(self.directory)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    async def rotate(self) -> None:
        """Close the open segment so that it can be replayed."""
        async with self._lock:
            if self._file is None or self._path is None:
                return
            file, path = self._file, self._path
            self._file, self._path = None, None
            await asyncio.to_thread(self._close, file, path)

    def _close(self, file: IO[bytes], path: Path) -> None:
        file.close()
        os.rename(path, path.with_suffix(READY))
        _fsync_directory(self.directory)

    def stats(self) -> SpoolStats:
        """Segments not yet replayed and the events in them (reads the files)."""
        segments = events = 0
        if not self.directory.exists():
            return SpoolStats(0, 0)
        for path in self.directory.iterdir():
            if path.name.startswith("clicks-") and path.is_file():
                segments += 1
                with open(path, "rb") as file:
                    events += sum(
                        1 for line in file if line.strip() and not line.startswith(_HEADER_PREFIX)
                    )
        return SpoolStats(segments, events)


# ---------------------------------------------------------------- replay


def _claim_segments(directory: Path) -> list[Path]:
    """Rename every replayable segment to `.replaying-<our pid>`; only one process wins
    each rename. Replayable: ready, or left open/replaying by a process that is gone."""
    if not directory.exists():
        return []
    me = os.getpid()
    claimed = []
    for path in sorted(directory.iterdir()):
        name = path.name
        if not name.startswith("clicks-"):
            continue
        if name.endswith(READY):
            pass
        elif name.endswith(OPEN):
            if _pid_alive(int(name.split("-")[1])):
                continue
        elif REPLAYING in name:
            if _pid_alive(int(name.rsplit("-", 1)[1])):
                continue
        else:
            continue
        base = name.split(".", 1)[0]
        target = directory / f"{base}{REPLAYING}{me}"
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue  # another process claimed it first
        claimed.append(target)
    return claimed


@dataclass
class _Segment:
    target: SpoolTarget | None  # None: written before segments named their database
    events: list[ClickEvent]
    unreadable: list[bytes]


def _read_segment(path: Path) -> _Segment:
    segment = _Segment(None, [], [])
    with open(path, "rb") as file:
        for raw in file:
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                if raw.startswith(_HEADER_PREFIX):
                    segment.target = SpoolTarget.of_header(data)
                else:
                    segment.events.append(ClickEvent.from_record(data))
            except (ValueError, KeyError, TypeError, AttributeError):
                # A torn last line after a crash, or a damaged file.
                segment.unreadable.append(raw)
    return segment


def _reject_segment(directory: Path, path: Path) -> Path:
    """Move a whole segment to `rejected/`, as it is (its first line names its database)."""
    target = directory / "rejected"
    target.mkdir(parents=True, exist_ok=True)
    moved = target / (path.name.split(".", 1)[0] + ".jsonl")
    os.rename(path, moved)
    _fsync_directory(directory)
    return moved


def _reject(directory: Path, lines: Sequence[bytes]) -> None:
    if not lines:
        return
    target = directory / "rejected"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / f"clicks-{utcnow():%Y-%m-%d}.jsonl", "ab") as file:
        for line in lines:
            file.write(line if line.endswith(b"\n") else line + b"\n")
        file.flush()
        os.fsync(file.fileno())


async def _apply_chunk(
    db: Database, chunk: list[ClickEvent], classifier: Classifier
) -> list[str | Exception]:
    async def work(session: AsyncSession) -> list[str | Exception]:
        return await apply_clicks(session, chunk, classifier=classifier)

    attempt = 0
    while True:
        try:
            return await db.run(work)
        except exc.IntegrityError:
            # The live writer committed one of these events between our check and insert;
            # a fresh attempt sees it and skips it.
            attempt += 1
            if attempt > 3:
                raise
            log.warning("clicks.replay_retry", attempt=attempt)


async def replay_spool(
    db: Database,
    directory: Path,
    *,
    chunk_size: int = 500,
    own: ClickSpool | None = None,
    on_event: Callable[[str], Awaitable[None] | None] | None = None,
    classifier: Classifier = classify,
) -> dict[str, int]:
    """Apply every replayable segment taken for this database; returns counts by outcome.
    A segment is deleted only after all of it committed; on a database error it goes back
    to ready and the error propagates (the job run or the replay loop records it). A
    segment taken for another database moves to `rejected/` whole."""
    current, here = await database_id(db), masked_url(db.url)
    if own is not None:
        await own.rotate()
    counts = {"segments": 0, "events": 0, "recorded": 0, "already_recorded": 0, "rejected": 0}
    for path in await asyncio.to_thread(_claim_segments, directory):
        segment = await asyncio.to_thread(_read_segment, path)
        counts["segments"] += 1
        counts["events"] += len(segment.events) + len(segment.unreadable)
        if segment.target is not None and not segment.target.admits(current, here):
            moved = await asyncio.to_thread(_reject_segment, directory, path)
            log.error(
                "clicks.spool_segment_of_another_database",
                segment=moved.name,
                written_for=segment.target.database_id or segment.target.database,
                this_database=current,
                events=len(segment.events),
            )
            counts["rejected"] += len(segment.events) + len(segment.unreadable)
            continue
        await _replay_segment(
            db, directory, path, segment, chunk_size, on_event, counts, classifier
        )
    return counts


async def _replay_segment(
    db: Database,
    directory: Path,
    path: Path,
    segment: _Segment,
    chunk_size: int,
    on_event: Callable[[str], Awaitable[None] | None] | None,
    counts: dict[str, int],
    classifier: Classifier,
) -> None:
    """Apply one claimed segment in chunks, then delete it; what cannot be applied goes
    to `rejected/`. On an error the segment goes back to ready."""
    rejected: list[bytes] = list(segment.unreadable)
    if segment.unreadable:
        log.error("clicks.spool_unreadable_lines", segment=path.name, lines=len(rejected))
    try:
        for start in range(0, len(segment.events), chunk_size):
            chunk = segment.events[start : start + chunk_size]
            results = await _apply_chunk(db, chunk, classifier)
            for event, result in zip(chunk, results, strict=True):
                outcome = result if isinstance(result, str) else "rejected"
                if isinstance(result, Exception):
                    log.error(
                        "clicks.replay_rejected",
                        event_id=event.event_id,
                        campaign_id=event.campaign_id,
                        error=repr(result),
                    )
                    rejected.append(json.dumps(event.to_record()).encode())
                counts[outcome] += 1
                if on_event is not None and (done := on_event(outcome)) is not None:
                    await done
    except BaseException:
        ready = path.with_name(path.name.split(".", 1)[0] + READY)
        await asyncio.to_thread(os.rename, path, ready)
        raise
    await asyncio.to_thread(_reject, directory, rejected)
    counts["rejected"] += len(segment.unreadable)
    await asyncio.to_thread(path.unlink)


def spool_directory(var_dir: Path) -> Path:
    return var_dir / "spool" / "clicks"


__all__ = ["ClickSpool", "SpoolStats", "SpoolTarget", "replay_spool", "spool_directory"]
