"""``hookbus replay``: send dead letters (or raw events) through the normalizer again, or a
sink's dead letters into that sink again; and publish a corrected dead letter.

It reads the dead-letter topic (or, with ``--from raw``, the raw topic; with ``--sink NAME``,
that sink's dead-letter topic ``<events_topic>.dlq.<name>``) with a consumer of its own: no
consumer group and no commit, its partitions assigned, from the offsets the filters give to
the end offsets taken when it starts - so it ends, even while the pipeline keeps writing.

Each record of the normalizer's dead-letter topic (or the raw topic) the filters select is
replayed one of two ways:

* by default the ORIGINAL raw record (its key, value and headers, without the
  ``hookbus-dlq-*`` ones) is published to the raw topic again, so the running normalizer
  maps it with its current configuration and mappers;
* with ``--direct`` it is normalized here, with the configuration given to this command,
  and the event is published to the events topic. A record that still cannot be mapped is
  counted and left where it is.

**A sink's dead letters** (``--sink NAME``) are written by this command straight into that
sink, an instance built from ``sinks.<name>`` of the configuration given (so with the fix
that made them writable), in batches of the sink's ``batch_size``, retried with its backoff
a few times. They are NOT published to the events topic: that would feed every sink again,
and while the table sinks would keep one row per id, an HTTP sink would send each event
again and a Kafka router would route it again. A per-sink retry topic read by the sink's
runner would do the same as this, at the price of one more topic per sink and a runner
reading two topics; writing here also says at once what still fails. Each event is handed
to the sink as read from the record it was dead-lettered from (``record_of`` gives that
record's key and headers, without the ``hookbus-dlq-*`` ones, at its original position in
the events topic, so table rows get the partition and offset the event had there). An event
the sink still refuses, or that cannot be written after the retries, is counted as still
failing (exit 1) and stays in the dead-letter topic, as every replayed dead letter does.
The sink's ``types``/``sources`` filters apply as in the runner.

**A corrected dead letter** (``--edit PARTITION:OFFSET --body FILE``, of the normalizer's
dead-letter topic or, with ``--sink``, of a sink's) is replayed like the others, with the
FILE's bytes as the record's value (for a raw event, the request body; for a sink's binary
event, its data; for a structured one, the whole event) and its key and headers kept, plus
``hookbus-edited: true`` and ``hookbus-original-sha256`` (hex SHA-256 of the value it
replaces; of the first original when an edited record is edited again). The dead letter
itself is left in its topic untouched, so the original stays on record; the command prints
where the edit went, never the body.

Replaying is idempotent: an event's id is derived from the raw event (its source and the
provider's event id, or a digest of the fact), so replaying the same record twice - or a
record whose first attempt did get through - publishes the same event id again, and the
sinks, which upsert by id, keep one event. (A corrected raw body may map to another id.)

Filters combine with AND: ``--source``, ``--provider``, ``--type`` (a glob on the event
type the record maps to now; with ``--sink``, the event's type), ``--reason`` (of the dead
letter), ``--since``/``--until`` (the time the record was written to the topic read; RFC
3339 or a duration ago such as ``2h``), ``--partition`` with ``--from-offset``/``--to-offset``
(both inclusive). ``--edit`` names one record and takes no filter. ``--dry-run`` publishes
(and writes) nothing and prints what would be replayed; ``--verbose`` adds one line per
record. A progress bar is drawn on stderr when it is a terminal.

Records are mapped by the normalizer's own code, encoding included
(:func:`normalizer.service.map_record`), so a record the normalizer would dead-letter - an
unexpected exception included, such as an event nested too deep to encode - is reported
with that dead letter's stage and reason, never a traceback. A dry run also maps each
selected record as the normalizer would with this configuration, and counts the records it
would dead-letter again, by stage and reason.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from hookbus.cloudevent import CloudEvent, CloudEventError, Mode
from hookbus.config import HookbusConfig, load_config
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import (
    MIN_RECORD_BYTES,
    client_options,
    ensure_topics,
    hookbus_topics,
    make_producer,
    max_record_bytes,
)
from hookbus.logging import get_logger
from hookbus.rawevent import RawEvent, RawEventError, format_time
from hookbus.sink import BatchResult, Rejection, Sink, SinkContext, SinkError, SinkUnavailableError
from hookbus.stage.backoff import Backoff
from hookbus.stage.deadletter import Failure
from hookbus.stage.record import ConsumedRecord, KafkaHeaders
from normalizer.deadletter import DeadLetter
from normalizer.errors import DeadLetterError, ReplayError
from normalizer.service import EventMapper, KafkaRecord, Normalized, build_mapper, map_record
from normalizer.settings import parse_settings
from sinks.configure import ConfiguredSink, configure_sink
from sinks.runner import stage_settings
from tools.topicread import Span, read_spans

EXIT_STILL_FAILING = 1
EXIT_BAD_REQUEST = 2
_ACK_WINDOW = 500
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
RAW_LABEL = "raw"
"""What stands for the reason of a record read from the raw topic, which has none."""
EDITED_HEADER = "hookbus-edited"
ORIGINAL_SHA256_HEADER = "hookbus-original-sha256"
SINK_WRITE_ATTEMPTS = 5
"""How often a batch the sink asks to retry is written before its events count as still failing."""
REASON_NOT_WRITTEN = "not_written"
"""Still failing: the sink kept asking to retry."""


class ReplayInput(StrEnum):
    DLQ = "dlq"
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay and how. Empty filters select everything."""

    input: ReplayInput = ReplayInput.DLQ
    sources: frozenset[str] = frozenset()
    providers: frozenset[str] = frozenset()
    types: tuple[str, ...] = ()
    reasons: frozenset[str] = frozenset()
    since: float | None = None
    until: float | None = None
    partitions: frozenset[int] = frozenset()
    from_offset: int | None = None
    to_offset: int | None = None
    direct: bool = False
    dry_run: bool = False
    verbose: bool = False
    sink: str | None = None
    """Replay this sink's dead letters into it (see the module's docstring)."""
    edit: Edit | None = None

    def topics(self, config: HookbusConfig) -> tuple[str, str]:
        """The topic read and the topic written (for a sink: ``sink <name>``)."""
        kafka = config.kafka
        if self.sink is not None:
            return configure_sink(config, self.sink).dead_letter_topic, f"sink {self.sink}"
        origin = kafka.dlq_topic if self.input is ReplayInput.DLQ else kafka.raw_topic
        return origin, kafka.events_topic if self.direct else kafka.raw_topic

    def has_filters(self) -> bool:
        return bool(
            self.sources
            or self.providers
            or self.types
            or self.reasons
            or self.partitions
            or self.since is not None
            or self.until is not None
            or self.from_offset is not None
            or self.to_offset is not None
        )

    def reading(self) -> ReplayOptions:
        """The options the records are read with: an edit reads its one record."""
        if self.edit is None:
            return self
        at = self.edit
        return dataclasses.replace(
            self, partitions=frozenset({at.partition}), from_offset=at.offset, to_offset=at.offset
        )


@dataclass(frozen=True, slots=True)
class Edit:
    """A corrected value for the dead letter at ``partition``:``offset``; key and headers are kept."""

    partition: int
    offset: int
    body: bytes = field(repr=False)

    def headers(self, headers: KafkaHeaders, original: bytes | None) -> list[tuple[str, bytes]]:
        """``headers`` flagged as edited, with the digest of the value replaced (the first one's, if edited before)."""
        digest = next((value for name, value in headers if name == ORIGINAL_SHA256_HEADER), None)
        if digest is None:
            digest = hashlib.sha256(original or b"").hexdigest().encode("ascii")
        kept = [(name, value) for name, value in headers if name not in (EDITED_HEADER, ORIGINAL_SHA256_HEADER)]
        return [*kept, (EDITED_HEADER, b"true"), (ORIGINAL_SHA256_HEADER, digest)]


@dataclass(slots=True)
class ReplayReport:
    """What a replay read, selected and did."""

    read: int = 0
    selected: int = 0
    replayed: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_source: Counter[str] = field(default_factory=Counter)
    still_failing: Counter[str] = field(default_factory=Counter)
    """``--direct``: records that still cannot be mapped, by ``stage/reason``; nothing was published for them."""
    would_fail: Counter[str] = field(default_factory=Counter)
    """A dry run re-publishing raw records: those the normalizer would dead-letter again, by ``stage/reason``."""
    unreplayable: Counter[str] = field(default_factory=Counter)
    """Selected records that cannot be replayed at all (not a dead letter, not a raw event)."""
    edited: int = 0
    """Records replayed with a corrected value."""

    def summary(self, options: ReplayOptions, origin_topic: str, target_topic: str) -> list[str]:
        verb = "would be replayed" if options.dry_run else "replayed"
        lines = [
            f"{origin_topic} -> {target_topic}: {self.read} read, {self.selected} selected, {self.replayed} {verb}"
            + (f" ({self.edited} edited)" if self.edited else "")
            + (" (dry run: nothing published)" if options.dry_run else "")
        ]
        for title, counts in (
            ("by reason", self.by_reason),
            ("by source", self.by_source),
            ("still failing", self.still_failing),
            ("would be dead-lettered", self.would_fail),
            ("cannot be replayed", self.unreplayable),
        ):
            if counts:
                lines.append(f"  {title}: " + ", ".join(f"{name}={count}" for name, count in sorted(counts.items())))
        return lines


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A record read, as far as the filters need it."""

    record: KafkaRecord
    reason: str
    key: bytes | None
    headers: KafkaHeaders
    value: bytes | None
    """The record's value, or the corrected one of an edit."""
    raw: RawEvent


class Progress:
    """A one-line progress bar on a terminal; nothing when the stream is not one."""

    WIDTH = 30
    MIN_REDRAW_SECONDS = 0.1

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self._total = total
        self._stream = stream if stream is not None and stream.isatty() and total > 0 else None
        self._done = 0
        self._drawn_at = 0.0

    def advance(self, count: int = 1) -> None:
        self._done += count
        now = time.monotonic()
        if self._stream is not None and (now - self._drawn_at >= self.MIN_REDRAW_SECONDS or self._done >= self._total):
            self._drawn_at = now
            share = min(1.0, self._done / self._total)
            filled = int(share * self.WIDTH)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self._stream.write(f"\rreplay [{bar}] {share:4.0%} {self._done}/{self._total}")
            self._stream.flush()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()


class _Replayer:
    """Publishes what a replay selects, in order, waiting for the acknowledgements every
    :data:`_ACK_WINDOW` records; a dry run (no producer) only counts."""

    def __init__(
        self, options: ReplayOptions, target_topic: str, producer: AIOKafkaProducer | None, report: ReplayReport
    ) -> None:
        self._options = options
        self._target_topic = target_topic
        self._producer = producer
        self._pending: list[asyncio.Future[Any]] = []
        self.report = report

    async def replay(self, candidate: _Candidate, result: Normalized | Failure | None) -> str:
        """Publish what ``candidate`` replays to; says what that was."""
        edited = " (edited)" if self._options.edit is not None else ""
        if not self._options.direct:
            await self._send(candidate.key, candidate.value, candidate.headers)
            sent = f"raw record{edited} to {self._target_topic}"
            if isinstance(result, Failure) and self._options.dry_run:
                self.report.would_fail[_counted_as(result)] += 1
                return f"{sent}; would be dead-lettered: {_described(result)}"
            return sent
        if not isinstance(result, Normalized):
            failure = result if result is not None else Failure("replay", "not_mapped", "")
            self.report.still_failing[_counted_as(failure)] += 1
            return f"still fails: {_described(failure)}"
        headers = result.headers
        if self._options.edit is not None:
            headers = self._options.edit.headers(headers, candidate.record.value)
        await self._send(result.key, result.value, headers)
        return f"event {result.event.type} id={result.event.id}{edited} to {self._target_topic}"

    async def _send(self, key: bytes | None, value: bytes | None, headers: KafkaHeaders) -> None:
        self.report.replayed += 1
        if self._producer is None:
            return
        acknowledgement = await self._producer.send(self._target_topic, value, key=key, headers=list(headers))
        self._pending.append(acknowledgement)
        if len(self._pending) >= _ACK_WINDOW:
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


async def replay(
    config: HookbusConfig,
    options: ReplayOptions,
    *,
    out: TextIO | None = None,
    progress: TextIO | None = None,
    observe: Callable[[ConsumedRecord], None] | None = None,
) -> ReplayReport:
    """Replay what ``options`` select; per-record lines go to ``out`` with ``verbose``.
    ``observe`` sees each record a sink is told an event was read from (``--sink``).

    Raises :class:`~normalizer.errors.ReplayError` for a partition the topic does not have
    (or an edit of a record it does not have), :class:`~hookbus.errors.KafkaUnavailableError`
    when Kafka fails and :class:`~hookbus.sink.SinkUnavailableError` when the sink cannot be
    opened; replaying again after any of them is safe.
    """
    kafka = config.kafka
    origin_topic, target_topic = options.topics(config)
    configured = configure_sink(config, options.sink) if options.sink is not None else None
    mode = parse_settings(config.normalizer, path=config.path).mode
    wants_mapper = configured is None and (options.direct or options.types or options.dry_run)
    mapper: EventMapper | None = build_mapper(config) if wants_mapper else None
    record_limit = max_record_bytes(config)
    consumer = AIOKafkaConsumer(
        **client_options(kafka),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=max(MIN_RECORD_BYTES, record_limit),
    )
    # The producer also tells the topic's partitions; a dry run sends nothing through it.
    producer = make_producer(kafka, max_request_size=record_limit)
    report = ReplayReport()
    # A pipeline that never ran has no dead-letter topic yet: then there is nothing to replay.
    topics = hookbus_topics(config) if configured is None else stage_settings(config, configured).topics
    try:
        await ensure_topics(kafka, topics)
        await consumer.start()
        await producer.start()
        partitions = await producer.partitions_for(origin_topic)
        ranges = await _ranges(consumer, origin_topic, partitions, options.reading())
        bar = Progress(sum(span.end - span.start for span in ranges.values()), progress)
        try:
            records = read_spans(consumer, ranges, bar.advance)
            if configured is None:
                replayer = _Replayer(options, target_topic, None if options.dry_run else producer, report)
                await _replay_raw(records, options, mapper, mode, replayer, out)
            else:
                writer = _SinkWriter(configured, config, options, report=report, out=out, observe=observe)
                await writer.replay(records)
        finally:
            bar.close()
    except KafkaError as exc:
        raise KafkaUnavailableError(f"replay from {origin_topic} failed: {exc!r}") from exc
    finally:
        await consumer.stop()
        await producer.stop()
    if options.edit is not None and report.read == 0:
        raise ReplayError(f"no dead letter at {options.edit.partition}:{options.edit.offset} of {origin_topic}")
    return report


async def _replay_raw(  # noqa: PLR0917 - one caller, each argument named there
    records: AsyncIterator[KafkaRecord],
    options: ReplayOptions,
    mapper: EventMapper | None,
    mode: Mode,
    replayer: _Replayer,
    out: TextIO | None,
) -> None:
    """The normalizer's dead letters (or raw events): to the raw topic, or mapped to the events topic."""
    report = replayer.report
    async for record in records:
        report.read += 1
        candidate = _candidate(record, options, report)
        if candidate is None:
            continue
        result = (
            map_record(mapper, candidate.headers, candidate.value, mode=mode, tries=1) if mapper is not None else None
        )
        if not _selected(candidate, result, options):
            continue
        report.selected += 1
        report.edited += options.edit is not None
        report.by_reason[candidate.reason] += 1
        report.by_source[candidate.raw.source] += 1
        outcome = await replayer.replay(candidate, result)
        if options.verbose and out is not None:
            print(_describe(candidate, outcome), file=out)
    await replayer.flush()


@dataclass(slots=True)  # not frozen: ConsumedRecord, a protocol, declares plain attributes
class _OriginRecord:
    """The record a sink is told an event was read from: the dead-lettered one, at its
    position in the events topic, without the ``hookbus-dlq-*`` headers (a :class:`ConsumedRecord`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders


@dataclass(frozen=True, slots=True)
class _SinkCandidate:
    record: KafkaRecord
    reason: str
    event: CloudEvent
    origin: _OriginRecord


class _SinkWriter:
    """Writes a sink's dead letters into an instance of that sink, in batches of its
    ``batch_size``, each id once per batch; a dry run opens nothing and only counts."""

    def __init__(
        self,
        configured: ConfiguredSink,
        config: HookbusConfig,
        options: ReplayOptions,
        *,
        report: ReplayReport,
        out: TextIO | None,
        observe: Callable[[ConsumedRecord], None] | None,
    ) -> None:
        self._configured = configured
        self._options = options
        self._report = report
        self._out = out if options.verbose else None
        self._observe = observe
        self._origins: dict[str, _OriginRecord] = {}
        self._pending: list[_SinkCandidate] = []
        self._written: set[str] = set()
        self._log = get_logger(service="replay", sink=configured.name, sink_type=configured.runner.type)
        context = SinkContext(
            name=configured.name,
            log=self._log,
            kafka=config.kafka,
            max_record_bytes=max_record_bytes(config),
            record_of=self._record_of,
        )
        self._sink: Sink | None = None if options.dry_run else configured.create(context)

    def _record_of(self, event: CloudEvent) -> ConsumedRecord | None:
        origin = self._origins.get(event.id)
        if origin is not None and self._observe is not None:
            self._observe(origin)
        return origin

    async def replay(self, records: AsyncIterator[KafkaRecord]) -> None:
        if self._sink is not None:
            await self._sink.open()
        try:
            async for record in records:
                self._report.read += 1
                candidate = self._candidate(record)
                if candidate is None:
                    continue
                self._report.selected += 1
                self._report.edited += self._options.edit is not None
                self._report.by_reason[candidate.reason] += 1
                self._report.by_source[candidate.event.source] += 1
                await self._add(candidate)
            await self._flush()
        finally:
            if self._sink is not None:
                await self._sink.close()

    def _candidate(self, record: KafkaRecord) -> _SinkCandidate | None:
        options = self._options
        timestamp = record.timestamp / 1000
        if (options.since is not None and timestamp < options.since) or (
            options.until is not None and timestamp >= options.until
        ):
            return None
        try:
            letter = DeadLetter.from_kafka(record.key, record.headers, record.value)
        except DeadLetterError as exc:
            self._report.unreplayable[exc.reason] += 1
            return None
        if options.reasons and letter.failure.reason not in options.reasons:
            return None
        value, headers = letter.value, list(letter.headers)
        if options.edit is not None:
            value, headers = options.edit.body, options.edit.headers(headers, letter.value)
        try:
            event = CloudEvent.from_kafka(headers, value)
        except CloudEventError as exc:
            if options.edit is not None:
                raise ReplayError(f"the corrected body does not make a CloudEvent: {exc.detail}") from exc
            self._report.unreplayable[exc.reason] += 1
            return None
        if options.types and not any(fnmatchcase(event.type, pattern) for pattern in options.types):
            return None
        if not self._configured.runner.accepts(event):
            return None
        origin = _OriginRecord(
            letter.origin.topic, letter.origin.partition, letter.origin.offset, letter.key, value, headers
        )
        return _SinkCandidate(record, letter.failure.reason, event, origin)

    async def _add(self, candidate: _SinkCandidate) -> None:
        event_id = candidate.event.id
        if event_id in self._written:
            # Dead-lettered twice: written once is enough (an HTTP sink would send it again).
            self._report.replayed += 1
            self._print(candidate, f"already written to sink {self._configured.name} by this replay")
            return
        if any(pending.event.id == event_id for pending in self._pending):
            await self._flush()
            await self._add(candidate)
            return
        self._pending.append(candidate)
        if len(self._pending) >= self._configured.runner.batch_size:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._origins = {candidate.event.id: candidate.origin for candidate in batch}
        outcomes = await self._write([candidate.event for candidate in batch])
        for candidate in batch:
            refusal = outcomes.get(candidate.event.id)
            if refusal is None:
                self._written.add(candidate.event.id)
                self._report.replayed += 1
                written = "would be written" if self._sink is None else "written"
                self._print(candidate, f"{written} to sink {self._configured.name}")
            else:
                self._report.still_failing[refusal.reason] += 1
                self._print(candidate, f"still fails: write {refusal.reason} ({refusal.detail})")

    async def _write(self, events: Sequence[CloudEvent]) -> dict[str, Rejection]:
        """Write ``events``, retrying what the sink asks to; the ones not written, by id."""
        failed: dict[str, Rejection] = {}
        if self._sink is None:
            return failed
        runner = self._configured.runner
        backoff = Backoff(runner.retry_initial_seconds, runner.retry_max_seconds)
        pending = list(events)
        for attempt in range(1, SINK_WRITE_ATTEMPTS + 1):
            result = await self._write_once(pending)
            done = {event.id for event in result.written}
            for refused in result.rejected:
                failed.setdefault(refused.event.id, refused)
            done |= failed.keys()
            pending = [event for event in pending if event.id not in done]
            if not pending:
                break
            if attempt < SINK_WRITE_ATTEMPTS:
                delay = backoff.next_delay(at_least=result.retry_after)
                self._log.warning("replay_sink_retry", events=len(pending), retry_in=round(delay, 3))
                await asyncio.sleep(delay)
        for event in pending:
            failed[event.id] = Rejection(
                event, REASON_NOT_WRITTEN, f"the sink asked to retry {SINK_WRITE_ATTEMPTS} times"
            )
        return failed

    async def _write_once(self, pending: Sequence[CloudEvent]) -> BatchResult:
        assert self._sink is not None
        try:
            return await self._sink.write(pending)
        except SinkError as exc:
            if exc.retriable:
                return BatchResult(retry=pending)
            return BatchResult(rejected=[Rejection(event, exc.reason, exc.detail) for event in pending])

    def _print(self, candidate: _SinkCandidate, outcome: str) -> None:
        if self._out is None:
            return
        record, event = candidate.record, candidate.event
        edited = " (edited)" if self._options.edit is not None else ""
        print(
            f"{record.topic}/{record.partition}@{record.offset} {format_time(record.timestamp / 1000)} "
            f"id={event.id} type={event.type} reason={candidate.reason}{edited} -> {outcome}",
            file=self._out,
        )


async def _ranges(
    consumer: AIOKafkaConsumer, topic: str, known: set[int], options: ReplayOptions
) -> dict[TopicPartition, Span]:
    """The offsets to read in each of the ``known`` partitions: the filters' start, up to the end offset now."""
    if not known:
        raise ReplayError(f"topic {topic} has no partitions")
    missing = sorted(options.partitions - known)
    if missing:
        raise ReplayError(f"topic {topic} has no partition {missing[0]} (it has {len(known)})")
    partitions = [
        TopicPartition(topic, number)
        for number in sorted(known)
        if not options.partitions or number in options.partitions
    ]
    beginnings = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    since = (
        await consumer.offsets_for_times({tp: int(options.since * 1000) for tp in partitions})
        if options.since is not None
        else {}
    )
    ranges = {}
    for tp in partitions:
        start = max(beginnings[tp], options.from_offset or 0)
        end = ends[tp] if options.to_offset is None else min(ends[tp], options.to_offset + 1)
        if tp in since:
            # No record at or after --since: nothing to read in this partition.
            start = max(start, since[tp].offset) if since[tp] is not None else end
        if start < end:
            ranges[tp] = Span(start, end)
    return ranges


def _candidate(record: KafkaRecord, options: ReplayOptions, report: ReplayReport) -> _Candidate | None:
    """The record as the filters see it, or ``None`` when a filter that needs no mapping refuses it."""
    timestamp = record.timestamp / 1000
    if (options.since is not None and timestamp < options.since) or (
        options.until is not None and timestamp >= options.until
    ):
        return None
    headers: KafkaHeaders
    if options.input is ReplayInput.DLQ:
        try:
            letter = DeadLetter.from_kafka(record.key, record.headers, record.value)
        except DeadLetterError as exc:
            report.unreplayable[exc.reason] += 1
            return None
        reason, key, headers = letter.failure.reason, letter.key, letter.headers
    else:
        reason, key, headers = RAW_LABEL, record.key, record.headers
    if options.reasons and reason not in options.reasons:
        return None
    value = record.value
    if options.edit is not None:
        value, headers = options.edit.body, options.edit.headers(headers, record.value)
    try:
        raw = RawEvent.from_kafka(headers, value)
    except RawEventError as exc:
        if not (options.sources or options.providers or options.types):
            report.unreplayable[exc.reason] += 1
        return None
    if (options.sources and raw.source not in options.sources) or (
        options.providers and raw.provider not in options.providers
    ):
        return None
    return _Candidate(record=record, reason=reason, key=key, headers=headers, value=value, raw=raw)


def _selected(candidate: _Candidate, result: Normalized | Failure | None, options: ReplayOptions) -> bool:
    if not options.types:
        return True
    return isinstance(result, Normalized) and any(fnmatchcase(result.event.type, pattern) for pattern in options.types)


def _counted_as(failure: Failure) -> str:
    return f"{failure.stage}/{failure.reason}"


def _described(failure: Failure) -> str:
    return f"{failure.stage} {failure.reason} ({failure.detail})"


def _describe(candidate: _Candidate, outcome: str) -> str:
    """One line per record for ``--verbose``: where it is and what it is, never its body."""
    record, raw = candidate.record, candidate.raw
    return (
        f"{record.topic}/{record.partition}@{record.offset} {format_time(record.timestamp / 1000)} "
        f"source={raw.source} provider={raw.provider} reason={candidate.reason} ingest_id={raw.ingest_id} "
        f"-> {outcome}"
    )


# --- the command line -------------------------------------------------------------------


def parse_moment(text: str, *, now: float | None = None) -> float:
    """Unix time of ``text``: RFC 3339 (a time without an offset is UTC) or a duration ago (``90m``, ``2h``, ``1d``)."""
    duration = _DURATION.fullmatch(text.strip())
    if duration:
        ago = float(duration.group(1)) * _SECONDS_PER_UNIT[duration.group(2)]
        return (time.time() if now is None else now) - ago
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an RFC 3339 time nor a duration like 2h") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _offset(text: str) -> int:
    try:
        offset = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset") from exc
    if offset < 0:
        raise argparse.ArgumentTypeError("an offset is not negative")
    return offset


def _position(text: str) -> tuple[int, int]:
    partition, colon, offset = text.partition(":")
    if not colon or not partition.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:OFFSET")
    return int(partition), _offset(offset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``hookbus replay`` (the ``--config`` option is added by the command)."""
    parser.add_argument(
        "--from",
        dest="input",
        choices=[item.value for item in ReplayInput],
        default=ReplayInput.DLQ.value,
        help="read the dead-letter topic (default) or the raw topic",
    )
    parser.add_argument("--source", action="append", default=[], metavar="NAME", help="only this source (repeatable)")
    parser.add_argument("--provider", action="append", default=[], metavar="NAME", help="only this provider")
    parser.add_argument(
        "--type", action="append", default=[], metavar="GLOB", help="only records mapping now to a matching event type"
    )
    parser.add_argument("--reason", action="append", default=[], metavar="REASON", help="only dead letters with it")
    parser.add_argument("--since", type=parse_moment, metavar="TIME", help="RFC 3339 time or a duration ago (2h)")
    parser.add_argument("--until", type=parse_moment, metavar="TIME", help="exclusive; same forms as --since")
    parser.add_argument("--partition", type=int, action="append", default=[], metavar="N", help="only this partition")
    parser.add_argument("--from-offset", type=_offset, metavar="OFFSET", help="first offset, inclusive")
    parser.add_argument("--to-offset", type=_offset, metavar="OFFSET", help="last offset, inclusive")
    parser.add_argument(
        "--direct", action="store_true", help="normalize here and publish events, instead of re-publishing raw records"
    )
    parser.add_argument(
        "--sink", metavar="NAME", help="write this sink's dead letters (<events_topic>.dlq.NAME) into that sink again"
    )
    parser.add_argument(
        "--edit", type=_position, metavar="PARTITION:OFFSET", help="replay this one dead letter with a corrected value"
    )
    parser.add_argument("--body", metavar="FILE", help="the corrected value for --edit (never printed)")
    parser.add_argument("--dry-run", action="store_true", help="publish nothing; print what would be replayed")
    parser.add_argument("--verbose", "-v", action="store_true", help="one line per selected record")


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    """:class:`ReplayOptions` from the parsed command line; :class:`ReplayError` when they contradict."""
    options = ReplayOptions(
        input=ReplayInput(args.input),
        sources=frozenset(args.source),
        providers=frozenset(args.provider),
        types=tuple(args.type),
        reasons=frozenset(args.reason),
        since=args.since,
        until=args.until,
        partitions=frozenset(args.partition),
        from_offset=args.from_offset,
        to_offset=args.to_offset,
        direct=args.direct,
        dry_run=args.dry_run,
        verbose=args.verbose,
        sink=getattr(args, "sink", None),
    )
    edit, body = getattr(args, "edit", None), getattr(args, "body", None)
    if options.sink is not None and (options.input is ReplayInput.RAW or options.direct):
        raise ReplayError("--sink replays that sink's dead letters into it: no --from raw, no --direct")
    if options.sink is not None and (options.sources or options.providers):
        raise ReplayError("--source and --provider select raw events; a sink's dead letters are events (use --type)")
    if edit is not None or body is not None:
        options = dataclasses.replace(options, edit=_edit_of(options, edit, body))
    if (options.from_offset is not None or options.to_offset is not None) and not options.partitions:
        raise ReplayError("--from-offset and --to-offset need --partition (offsets are per partition)")
    if options.reasons and options.input is ReplayInput.RAW:
        raise ReplayError("--reason selects dead letters; records of the raw topic have none")
    if options.since is not None and options.until is not None and options.since >= options.until:
        raise ReplayError("--since must be before --until")
    return options


def _edit_of(options: ReplayOptions, position: tuple[int, int] | None, body: str | None) -> Edit:
    if position is None:
        raise ReplayError("--body needs --edit PARTITION:OFFSET")
    if body is None:
        raise ReplayError("--edit needs --body FILE, the corrected value")
    if options.input is ReplayInput.RAW:
        raise ReplayError("--edit corrects a dead letter; the raw topic has none")
    if options.has_filters():
        raise ReplayError("--edit names one dead letter: no filters with it")
    try:
        value = Path(body).read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read --body {body}: {exc.strerror}") from exc
    return Edit(position[0], position[1], value)


def main(args: argparse.Namespace) -> int:
    """``hookbus replay``: 0 when everything selected was replayed, 1 when some still fails
    (``--direct``, ``--sink``) or Kafka or the sink failed, 2 for contradictory options."""
    config = load_config(args.config)
    try:
        options = options_from_args(args)
        report = asyncio.run(replay(config, options, out=sys.stdout, progress=sys.stderr))
    except ReplayError as exc:
        print(f"hookbus replay: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except (KafkaUnavailableError, SinkUnavailableError) as exc:
        print(f"hookbus replay: {exc.detail}; replaying again is safe", file=sys.stderr)
        return EXIT_STILL_FAILING
    for line in report.summary(options, *options.topics(config)):
        print(line)
    return EXIT_STILL_FAILING if report.still_failing else 0
