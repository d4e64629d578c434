"""``hookbus replay``: send dead letters (or raw events) through the normalizer again.

It reads the dead-letter topic (or, with ``--from raw``, the raw topic) with a consumer of
its own: no consumer group and no commit, its partitions assigned, from the offsets the
filters give to the end offsets taken when it starts - so it ends, even while the
normalizer keeps writing.

Each record the filters select is replayed one of two ways:

* by default the ORIGINAL raw record (its key, value and headers, without the
  ``hookbus-dlq-*`` ones) is published to the raw topic again, so the running normalizer
  maps it with its current configuration and mappers;
* with ``--direct`` it is normalized here, with the configuration given to this command,
  and the event is published to the events topic. A record that still cannot be mapped is
  counted and left where it is.

Replaying is idempotent: an event's id is derived from the raw event (its source and the
provider's event id, or a digest of the fact), so replaying the same record twice - or a
record whose first attempt did get through - publishes the same event id again, and the
sinks, which upsert by id, keep one event.

Filters combine with AND: ``--source``, ``--provider``, ``--type`` (a glob on the event
type the record maps to now), ``--reason`` (of the dead letter), ``--since``/``--until``
(the time the record was written to the topic read; RFC 3339 or a duration ago such as
``2h``), ``--partition`` with ``--from-offset``/``--to-offset`` (both inclusive).
``--dry-run`` publishes nothing and prints what would be replayed; it also maps each
selected record here, as the normalizer would with this configuration, and counts the
records it would dead-letter again, by stage and reason. ``--verbose`` adds one line per
record. A progress bar is drawn on stderr when it is a terminal.

Records are mapped by the normalizer's own code, encoding included
(:func:`normalizer.service.map_record`), so a record the normalizer would dead-letter - an
unexpected exception included, such as an event nested too deep to encode - is reported
with that dead letter's stage and reason, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

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
from hookbus.logging import configure_logging
from hookbus.rawevent import RawEvent, RawEventError, format_time
from hookbus.stage.deadletter import Failure
from hookbus.stage.record import KafkaHeaders
from normalizer.deadletter import DeadLetter
from normalizer.errors import DeadLetterError, ReplayError
from normalizer.service import EventMapper, KafkaRecord, Normalized, build_mapper, map_record
from normalizer.settings import parse_settings

EXIT_STILL_FAILING = 1
EXIT_BAD_REQUEST = 2
_ACK_WINDOW = 500
_FETCH_RECORDS = 500
_FETCH_TIMEOUT_MS = 500
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
RAW_LABEL = "raw"
"""What stands for the reason of a record read from the raw topic, which has none."""


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

    def topics(self, config: HookbusConfig) -> tuple[str, str]:
        """The topic read and the topic written."""
        kafka = config.kafka
        origin = kafka.dlq_topic if self.input is ReplayInput.DLQ else kafka.raw_topic
        return origin, kafka.events_topic if self.direct else kafka.raw_topic


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

    def summary(self, options: ReplayOptions, origin_topic: str, target_topic: str) -> list[str]:
        verb = "would be replayed" if options.dry_run else "replayed"
        lines = [
            f"{origin_topic} -> {target_topic}: {self.read} read, {self.selected} selected, {self.replayed} {verb}"
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
    raw: RawEvent


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    end: int
    """Exclusive."""


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

    def __init__(self, options: ReplayOptions, target_topic: str, producer: AIOKafkaProducer | None) -> None:
        self._options = options
        self._target_topic = target_topic
        self._producer = producer
        self._pending: list[asyncio.Future[Any]] = []
        self.report = ReplayReport()

    async def replay(self, candidate: _Candidate, result: Normalized | Failure | None) -> str:
        """Publish what ``candidate`` replays to; says what that was."""
        if not self._options.direct:
            await self._send(candidate.key, candidate.record.value, candidate.headers)
            sent = f"raw record to {self._target_topic}"
            if isinstance(result, Failure) and self._options.dry_run:
                self.report.would_fail[_counted_as(result)] += 1
                return f"{sent}; would be dead-lettered: {_described(result)}"
            return sent
        if not isinstance(result, Normalized):
            failure = result if result is not None else Failure("replay", "not_mapped", "")
            self.report.still_failing[_counted_as(failure)] += 1
            return f"still fails: {_described(failure)}"
        await self._send(result.key, result.value, result.headers)
        return f"event {result.event.type} id={result.event.id} to {self._target_topic}"

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
) -> ReplayReport:
    """Replay what ``options`` select; per-record lines go to ``out`` with ``verbose``.

    Raises :class:`~normalizer.errors.ReplayError` for a partition the topic does not have
    and :class:`~hookbus.errors.KafkaUnavailableError` when Kafka fails; replaying again
    after either is safe.
    """
    kafka = config.kafka
    origin_topic, target_topic = options.topics(config)
    mode = parse_settings(config.normalizer, path=config.path).mode
    mapper: EventMapper | None = build_mapper(config) if options.direct or options.types or options.dry_run else None
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
    replayer = _Replayer(options, target_topic, None if options.dry_run else producer)
    report = replayer.report
    try:
        # A pipeline that never ran has no dead-letter topic yet: then there is nothing to replay.
        await ensure_topics(kafka, hookbus_topics(config))
        await consumer.start()
        await producer.start()
        ranges = await _ranges(consumer, origin_topic, await producer.partitions_for(origin_topic), options)
        bar = Progress(sum(span.end - span.start for span in ranges.values()), progress)
        try:
            async for record in _read(consumer, ranges, bar):
                report.read += 1
                candidate = _candidate(record, options, report)
                if candidate is None:
                    continue
                result = (
                    map_record(mapper, candidate.headers, record.value, mode=mode, tries=1)
                    if mapper is not None
                    else None
                )
                if not _selected(candidate, result, options):
                    continue
                report.selected += 1
                report.by_reason[candidate.reason] += 1
                report.by_source[candidate.raw.source] += 1
                outcome = await replayer.replay(candidate, result)
                if options.verbose and out is not None:
                    print(_describe(candidate, outcome), file=out)
            await replayer.flush()
        finally:
            bar.close()
    except KafkaError as exc:
        raise KafkaUnavailableError(f"replay from {origin_topic} failed: {exc!r}") from exc
    finally:
        await consumer.stop()
        await producer.stop()
    return report


async def _ranges(
    consumer: AIOKafkaConsumer, topic: str, known: set[int], options: ReplayOptions
) -> dict[TopicPartition, _Range]:
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
            ranges[tp] = _Range(start, end)
    return ranges


async def _read(
    consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, _Range], bar: Progress
) -> AsyncIterator[KafkaRecord]:
    """The records of ``ranges``, in order within each partition; ends at the end offsets."""
    consumer.assign(list(ranges))
    for tp, span in ranges.items():
        consumer.seek(tp, span.start)
    remaining = dict(ranges)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=_FETCH_TIMEOUT_MS, max_records=_FETCH_RECORDS)
        for tp, records in batch.items():
            end = remaining[tp].end if tp in remaining else -1
            for record in records:
                if record.offset >= end:
                    break
                bar.advance()
                yield record
        for tp in list(remaining):
            # The position passes the end offset too when the last offsets hold no record
            # (a transaction marker, a compacted record).
            if await consumer.position(tp) >= remaining[tp].end:
                consumer.pause(tp)
                del remaining[tp]


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
    try:
        raw = RawEvent.from_kafka(headers, record.value)
    except RawEventError as exc:
        if not (options.sources or options.providers or options.types):
            report.unreplayable[exc.reason] += 1
        return None
    if (options.sources and raw.source not in options.sources) or (
        options.providers and raw.provider not in options.providers
    ):
        return None
    return _Candidate(record=record, reason=reason, key=key, headers=headers, raw=raw)


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
    )
    if (options.from_offset is not None or options.to_offset is not None) and not options.partitions:
        raise ReplayError("--from-offset and --to-offset need --partition (offsets are per partition)")
    if options.reasons and options.input is ReplayInput.RAW:
        raise ReplayError("--reason selects dead letters; records of the raw topic have none")
    if options.since is not None and options.until is not None and options.since >= options.until:
        raise ReplayError("--since must be before --until")
    return options


def main(args: argparse.Namespace) -> int:
    """``hookbus replay``: 0 when everything selected was replayed, 1 when some still fails
    (``--direct``) or Kafka failed, 2 for contradictory options."""
    configure_logging(getattr(args, "log_level", "info"))
    config = load_config(args.config)
    try:
        options = options_from_args(args)
        report = asyncio.run(replay(config, options, out=sys.stdout, progress=sys.stderr))
    except ReplayError as exc:
        print(f"hookbus replay: {exc.detail}", file=sys.stderr)
        return EXIT_BAD_REQUEST
    except KafkaUnavailableError as exc:
        print(f"hookbus replay: {exc.detail}; replaying again is safe", file=sys.stderr)
        return EXIT_STILL_FAILING
    for line in report.summary(options, *options.topics(config)):
        print(line)
    return EXIT_STILL_FAILING if report.still_failing else 0
