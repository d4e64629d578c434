"""The gateway's durable local spool: where accepted events wait while Kafka does not acknowledge.

A spool is one directory of append-only segment files (``<sequence>.seg``). Each record is
framed as ``length (4 bytes) | CRC32 of the payload (4 bytes) | payload``, big-endian, and
the payload is a Kafka record as the raw topic will get it: key, ``hookbus-*`` headers and
the body, byte for byte. :meth:`Spool.append` returns only once the record is fsynced (and
the directory too when the record opened a new segment), so a 2xx answered after it survives
a crash of the process or the machine.

Writes go through one writer task that takes every record queued since its last write,
writes them together and fsyncs once (group commit): many requests spooling at once cost one
fsync, and their bytes never interleave. One drainer reads the records back oldest first
(:meth:`Spool.read`) and acknowledges them (:meth:`Spool.acknowledge`); a segment is
deleted only once every record in it is acknowledged. Progress inside a segment is kept in
memory only, so after a crash the records of the oldest segment that were already
delivered are delivered again (at least once).

On opening, a torn last record (a short frame, a short payload, or a CRC that does not
match: the process died mid-write) is cut off and logged; every complete record is kept.

Several processes may share a spool root: each process holds an exclusive lock on the
directory it writes (a *slot*, ``worker-<n>``), and :func:`claim` gives a process the
first free slot plus every unlocked slot that still holds records (one left by a process
that crashed or a worker count that shrank), so nothing is stranded.

Each spooling source has a spool root of its own (``<root>/sources/<source>``, see
:func:`claim_sources`), so one source's outage never puts another source's requests behind
it. A previous version kept one root for every source (``<root>/worker-<n>``): those slots
are still claimed and drained, and no longer written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hookbus.logging import get_logger
from ingest.errors import SpoolCorruptError, SpoolFullError, SpoolWriteError

FRAME = struct.Struct(">II")
"""Every record starts with the payload's length and its CRC32."""
_KEY_LENGTH = struct.Struct(">I")
_HEADER_COUNT = struct.Struct(">H")
_NAME_LENGTH = struct.Struct(">H")
_VALUE_LENGTH = struct.Struct(">I")
SEGMENT_SUFFIX = ".seg"
SEGMENT_BYTES = 16 * 1024 * 1024
"""A new segment is started once the current one is this large, so drained space is freed in steps."""
SLOT_PREFIX = "worker-"
_SLOT_NAME = re.compile(rf"^{SLOT_PREFIX}(\d+)$")
_SEGMENT_NAME = re.compile(rf"^(\d{{16}}){re.escape(SEGMENT_SUFFIX)}$")
# Claiming a slot loses a race only when another process removes or takes it at that moment.
_CLAIM_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """A Kafka record waiting in the spool: key, headers and value exactly as they will be produced."""

    key: bytes
    headers: tuple[tuple[str, bytes], ...]
    value: bytes

    @property
    def ingest_id(self) -> str:
        return dict(self.headers).get("hookbus-ingest-id", b"").decode("utf-8", "replace")

    def encode(self) -> bytes:
        """The payload of this record's frame."""
        parts = [_KEY_LENGTH.pack(len(self.key)), self.key, _HEADER_COUNT.pack(len(self.headers))]
        for name, value in self.headers:
            encoded_name = name.encode("utf-8")
            parts += [_NAME_LENGTH.pack(len(encoded_name)), encoded_name, _VALUE_LENGTH.pack(len(value)), value]
        parts.append(self.value)
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes) -> SpoolRecord:
        """The record of a payload whose CRC matched; ``ValueError`` if its inner lengths do not add up."""
        view = memoryview(payload)
        position = 0

        def take(size: int) -> bytes:
            nonlocal position
            if position + size > len(view):
                raise ValueError("a length inside the record points past its end")
            chunk = bytes(view[position : position + size])
            position += size
            return chunk

        (key_length,) = _KEY_LENGTH.unpack(take(_KEY_LENGTH.size))
        key = take(key_length)
        (count,) = _HEADER_COUNT.unpack(take(_HEADER_COUNT.size))
        headers = []
        for _ in range(count):
            (name_length,) = _NAME_LENGTH.unpack(take(_NAME_LENGTH.size))
            name = take(name_length).decode("utf-8")
            (value_length,) = _VALUE_LENGTH.unpack(take(_VALUE_LENGTH.size))
            headers.append((name, take(value_length)))
        return cls(key=key, headers=tuple(headers), value=bytes(view[position:]))


def frame(record: SpoolRecord) -> bytes:
    """The bytes a record occupies in a segment."""
    payload = record.encode()
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def set_aside(directory: Path, record: SpoolRecord) -> Path:
    """Keep ``record`` durably in ``directory``, one file per record, framed as in a segment.

    For a record Kafka will never take: it must not block the records behind it, and an
    accepted event is never dropped, so it waits here for an operator (docs/operations.md).
    """
    directory.mkdir(parents=True, exist_ok=True)
    name = "".join(character for character in record.ingest_id if character.isalnum() or character == "-")
    path = directory / f"{name or 'record'}-{time.time_ns()}.rec"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        _write_all(descriptor, frame(record))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    _fsync_directory(directory)
    return path


@dataclass(frozen=True, slots=True)
class SpoolDepth:
    """What waits in a spool: records not yet acknowledged, and the bytes its segments occupy."""

    records: int
    bytes: int

    def __add__(self, other: SpoolDepth) -> SpoolDepth:
        return SpoolDepth(self.records + other.records, self.bytes + other.bytes)


@dataclass(frozen=True, slots=True)
class Spooled:
    """A record read back from the spool, and where the next one starts (for :meth:`Spool.acknowledge`)."""

    record: SpoolRecord
    segment: int
    end: int
    ordinal: int
    """How many records of its segment, counting from the first, end with this one."""


@dataclass(slots=True)
class _Segment:
    sequence: int
    path: Path
    size: int
    """Bytes fsynced; nothing past this is ever read."""
    records: int
    acknowledged_bytes: int = 0
    acknowledged_records: int = 0

    @property
    def drained(self) -> bool:
        return self.acknowledged_bytes >= self.size


@dataclass(frozen=True, slots=True)
class _Scan:
    records: int
    valid_bytes: int
    file_bytes: int


def _scan(path: Path) -> _Scan:
    """Count the complete records of a segment and where the last one ends."""
    records = 0
    position = 0
    with path.open("rb") as file:
        data = file.read()
    while position + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, position)
        end = position + FRAME.size + length
        if end > len(data) or zlib.crc32(data[position + FRAME.size : end]) != crc:
            break
        records += 1
        position = end
    return _Scan(records=records, valid_bytes=position, file_bytes=len(data))


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]


class Spool:
    """One slot directory: appends (group-committed), ordered reads, acknowledgements.

    Open it with :meth:`open` (or through :func:`claim`), which takes the directory's lock
    and recovers what a previous process left. All methods but :meth:`open` run on the
    event loop; file I/O happens in worker threads.
    """

    def __init__(self, directory: Path, lock: int, segments: list[_Segment], *, max_bytes: int) -> None:
        self.directory = directory
        self._lock_descriptor: int | None = lock
        self._segments = segments
        self._max_bytes = max_bytes
        self._reserved = 0
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._writing: list[tuple[bytes, asyncio.Future[None]]] = []
        self._queued = asyncio.Event()
        self._appended = asyncio.Event()
        self._io = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._active: int | None = None
        self._log = get_logger(service="gateway", spool=str(directory))

    @classmethod
    def open(cls, directory: Path, *, max_bytes: int) -> Spool:
        """Lock ``directory`` (created if missing) and recover its segments; blocking.

        Raises :class:`BlockingIOError` when another process holds the directory.
        """
        lock = _lock_directory(directory)
        try:
            segments = _recover(directory)
        except BaseException:
            os.close(lock)
            raise
        return cls(directory, lock, segments, max_bytes=max_bytes)

    def depth(self) -> SpoolDepth:
        return SpoolDepth(
            records=sum(segment.records - segment.acknowledged_records for segment in self._segments),
            bytes=sum(segment.size for segment in self._segments),
        )

    @property
    def empty(self) -> bool:
        """Nothing waits, and nothing is on its way in."""
        return self._reserved == 0 and self.depth().records == 0

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def limit(self, max_bytes: int) -> None:
        """Bound what this spool may hold from now on."""
        self._max_bytes = max_bytes

    async def append(self, record: SpoolRecord) -> None:
        """Return once ``record`` is fsynced behind every record appended before it.

        Raises :class:`~ingest.errors.SpoolFullError` when it would not fit in ``max_bytes``
        and :class:`~ingest.errors.SpoolWriteError` when the disk refused it.
        """
        data = frame(record)
        if self.depth().bytes + self._reserved + len(data) > self._max_bytes:
            raise SpoolFullError(f"the spool holds {self._max_bytes} bytes at most")
        self._reserved += len(data)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((data, written))
        self._queued.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name=f"spool-writer {self.directory}")
        # A request cancelled meanwhile must not cancel the write others wait for too.
        await asyncio.shield(written)

    async def _write_queued(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            self._writing = batch
            size = sum(len(data) for data, _ in batch)
            try:
                async with self._io:
                    segment = await asyncio.to_thread(self._write_batch, [data for data, _ in batch])
                    segment.size += size
                    segment.records += len(batch)
            except OSError as exc:
                self._log.error("spool_write_failed", error=exc.strerror, records=len(batch))
                failure = SpoolWriteError(f"the spool could not be written: {exc.strerror}")
                for _, written in batch:
                    if not written.done():
                        written.set_exception(failure)
                        written.exception()  # retrieved here: a cancelled waiter would leave it unseen
            else:
                for _, written in batch:
                    if not written.done():
                        written.set_result(None)
                self._appended.set()
            finally:
                self._reserved -= size
                self._writing = []

    def _write_batch(self, frames: Sequence[bytes]) -> _Segment:
        """Write and fsync ``frames`` to the active segment, starting one if needed (in a thread)."""
        segment = self._segments[-1] if self._segments and self._active is not None else None
        if segment is None or segment.size >= SEGMENT_BYTES:
            segment = self._start_segment()
        assert self._active is not None
        _write_all(self._active, b"".join(frames))
        os.fsync(self._active)
        return segment

    def _start_segment(self) -> _Segment:
        self._close_active()
        sequence = self._segments[-1].sequence + 1 if self._segments else 0
        path = self.directory / f"{sequence:016d}{SEGMENT_SUFFIX}"
        self._active = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        # The new name must survive a crash as much as the records written to it.
        _fsync_directory(self.directory)
        segment = _Segment(sequence=sequence, path=path, size=0, records=0)
        self._segments.append(segment)
        return segment

    def _close_active(self) -> None:
        if self._active is not None:
            os.close(self._active)
            self._active = None

    async def read(self, *, max_records: int) -> list[Spooled]:
        """The oldest records not yet acknowledged, up to ``max_records``; waits while there is none.

        Reads always start at the oldest unacknowledged record: the caller acknowledges what
        it delivered before it reads again.
        """
        while True:
            self._appended.clear()
            segment = next((segment for segment in self._segments if not segment.drained), None)
            if segment is not None:
                return await asyncio.to_thread(_read_segment, segment, max_records)
            await self._appended.wait()

    async def acknowledge(self, spooled: Spooled) -> None:
        """Mark every record up to and including ``spooled`` delivered; delete finished segments."""
        for segment in self._segments:
            if segment.sequence < spooled.segment:
                segment.acknowledged_bytes, segment.acknowledged_records = segment.size, segment.records
            elif segment.sequence == spooled.segment:
                segment.acknowledged_bytes, segment.acknowledged_records = spooled.end, spooled.ordinal
        async with self._io:
            await self._remove_drained()

    async def _remove_drained(self) -> None:
        """Delete the segments whose every record is acknowledged (the caller holds ``_io``)."""
        for segment in [segment for segment in self._segments if segment.drained]:
            if segment is self._segments[-1] and self._active is not None:
                self._close_active()
            # Already gone when the task that deleted it was cancelled while its thread ran the
            # unlink (a drainer stopped mid-acknowledge): the segment was still listed.
            await asyncio.to_thread(segment.path.unlink, missing_ok=True)
            self._segments.remove(segment)

    async def close(self, *, remove_if_empty: bool = False) -> None:
        """Finish the writes under way, close the files and release the lock."""
        await asyncio.gather(*self._unwritten(), return_exceptions=True)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        async with self._io:
            # A drainer stopped between acknowledging and deleting must not leave a delivered
            # segment behind: the next start would deliver all of it again.
            await self._remove_drained()
            self._close_active()
            if remove_if_empty and not self._segments:
                # Removed while still locked, so no other process can be writing into it.
                with contextlib.suppress(OSError):
                    self.directory.rmdir()
                    # The topic's folder too, unless another process's slot is in it.
                    self.directory.parent.rmdir()
            self.release()

    def release(self) -> None:
        """Release the directory's lock (at once: for a spool that was never written to)."""
        if self._lock_descriptor is not None:
            os.close(self._lock_descriptor)
            self._lock_descriptor = None

    def _unwritten(self) -> list[asyncio.Future[None]]:
        return [written for _, written in self._queue + self._writing]


def _read_segment(segment: _Segment, max_records: int) -> list[Spooled]:
    records: list[Spooled] = []
    position = segment.acknowledged_bytes
    size = segment.size
    with segment.path.open("rb") as file:
        file.seek(position)
        while len(records) < max_records and position < size:
            length, crc = FRAME.unpack(file.read(FRAME.size))
            payload = file.read(length)
            if len(payload) != length or zlib.crc32(payload) != crc:
                raise SpoolCorruptError(f"a record of {segment.path} changed on disk after it was written")
            position += FRAME.size + length
            ordinal = segment.acknowledged_records + len(records) + 1
            records.append(Spooled(SpoolRecord.decode(payload), segment.sequence, position, ordinal))
    return records


def _lock_directory(directory: Path) -> int:
    """An exclusive lock on ``directory`` itself, taken after making sure it is still the one at that path."""
    for _ in range(_CLAIM_ATTEMPTS):
        directory.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Its holder may have removed it between our open and our lock: then start over.
            if os.stat(directory).st_ino == os.fstat(descriptor).st_ino:
                _fsync_directory(directory.parent)
                return descriptor
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)
    raise BlockingIOError(errno.EAGAIN, "the spool directory keeps disappearing", str(directory))


def _recover(directory: Path) -> list[_Segment]:
    log = get_logger(service="gateway", spool=str(directory))
    segments: list[_Segment] = []
    for path in sorted(directory.iterdir()):
        match = _SEGMENT_NAME.fullmatch(path.name)
        if match is None:
            continue
        scan = _scan(path)
        if scan.valid_bytes < scan.file_bytes:
            # A record cut short by a crash: it was never acknowledged to anyone, so drop it.
            log.warning(
                "spool_torn_record_truncated",
                segment=path.name,
                kept_bytes=scan.valid_bytes,
                dropped_bytes=scan.file_bytes - scan.valid_bytes,
            )
            with path.open("r+b") as file:
                file.truncate(scan.valid_bytes)
                os.fsync(file.fileno())
        if scan.records == 0:
            path.unlink()
            continue
        segments.append(_Segment(sequence=int(match.group(1)), path=path, size=scan.valid_bytes, records=scan.records))
    if segments:
        depth = sum(segment.records for segment in segments)
        log.info("spool_recovered", records=depth)
    return segments


def _slots(root: Path) -> Iterator[tuple[int, Path]]:
    if not root.is_dir():
        return
    for path in root.iterdir():
        match = _SLOT_NAME.fullmatch(path.name)
        if match is not None and path.is_dir():
            yield int(match.group(1)), path


@dataclass(frozen=True, slots=True)
class Claim:
    """The spools one process owns: the one it writes, and older ones it only drains."""

    own: Spool
    adopted: tuple[Spool, ...]


def claim(root: Path, *, max_bytes: int) -> Claim:
    """The first free slot under ``root`` to write to, and every other free slot holding records.

    Blocking (it recovers segments): call it in a thread. ``max_bytes`` bounds what the
    process keeps in all of them together.
    """
    root.mkdir(parents=True, exist_ok=True)
    own: Spool | None = None
    adopted: list[Spool] = []
    taken: set[int] = set()
    for index, path in sorted(_slots(root)):
        taken.add(index)
        try:
            spool = Spool.open(path, max_bytes=max_bytes)
        except BlockingIOError:
            continue
        if own is None:
            own = spool
        elif spool.depth().records:
            adopted.append(spool)
        else:
            spool.release()
    index = 0
    while own is None:
        if index not in taken:
            with contextlib.suppress(BlockingIOError):
                own = Spool.open(root / f"{SLOT_PREFIX}{index}", max_bytes=max_bytes)
        index += 1
    held = sum(spool.depth().bytes for spool in adopted)
    own.limit(max(0, max_bytes - held))
    return Claim(own=own, adopted=tuple(adopted))


SOURCES_DIRECTORY = "sources"
"""Under a spool root: one folder per spooling source, each a root of worker slots."""


@dataclass(frozen=True, slots=True)
class SourceClaims:
    """The spools of one process: a :class:`Claim` per spooling source, and shared slots left by an older version."""

    by_source: Mapping[str, Claim]
    shared: tuple[Spool, ...]
    """Slots of the single directory all sources shared before; drained, never written."""


def claim_sources(root: Path, sources: Iterable[str], *, max_bytes: int) -> SourceClaims:
    """A claim under ``<root>/sources/<source>`` for each source, each bounded by an equal share of ``max_bytes``.

    Equal shares keep one source's long outage from filling the room the others need. Blocking
    (it recovers segments): call it in a thread. Shared slots left by an older version are
    claimed too when they hold records; their bytes are not counted against the shares, since
    nothing is added to them and they only shrink.
    """
    names = sorted(set(sources))
    share = max_bytes // max(1, len(names))
    by_source = {name: claim(root / SOURCES_DIRECTORY / name, max_bytes=share) for name in names}
    shared: list[Spool] = []
    for _, path in sorted(_slots(root)):
        try:
            spool = Spool.open(path, max_bytes=0)
        except BlockingIOError:
            continue
        if spool.depth().records:
            shared.append(spool)
        else:
            spool.release()
    return SourceClaims(by_source=by_source, shared=tuple(shared))
