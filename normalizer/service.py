"""``hookbus normalizer``: raw topic in, CloudEvents out, what cannot be mapped aside.

A consumer group (``normalizer.group_id``) reads the raw topic in batches. Each record
becomes either a CloudEvent on the events topic - in the CloudEvents Kafka binding
(``normalizer.mode``), keyed by its partition key so one entity's events share a partition
and keep their order - or a dead letter on the dead-letter topic: the original record with
``hookbus-dlq-*`` headers (see :mod:`normalizer.deadletter`).

The normalizer is a processor stage of :mod:`hookbus.stage`, which says how delivery is
at-least-once and committed after the acknowledgement, how order is kept (records of one
raw partition are published in order, a batch only after the one before is acknowledged,
and a send that fails is retried with everything sent after it), and how rebalances and
SIGTERM finish the batch in flight. This module maps records and counts what it made.

Failures never stop a partition. A record that is not a raw event, names an unknown
source, does not parse, or violates the schema is dead-lettered at once. An unexpected
exception while reading, mapping, validating or encoding a record (JSON nested deeper than
the encoder goes, say) is that record's failure, contained by the stage runtime: after
``max_attempts`` tries it is dead-lettered (stage ``normalize``, reason ``internal_error``,
the exception's class name). Transient Kafka errors are retried with capped exponential
backoff and jitter, forever. An event Kafka refuses on its own (too large, say) is
dead-lettered after ``max_attempts`` tries (stage ``publish``, reason ``publish_failed``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import HookbusConfig, load_config
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import UnsafeTopicsError, hookbus_topics, max_record_bytes
from hookbus.logging import get_logger
from hookbus.rawevent import RawEvent, RawEventError
from hookbus.signals import stop_on_signals
from hookbus.stage.containment import contained
from hookbus.stage.deadletter import STAGE_READ, Failure
from hookbus.stage.processor import Output, ProcessorStage
from hookbus.stage.record import ConsumedRecord, KafkaHeaders
from hookbus.stage.runtime import Outgoing, StageRuntime, StageSettings
from normalizer.deadletter import STAGE_NORMALIZE
from normalizer.errors import NORMALIZE_ERRORS
from normalizer.metrics import NormalizerMetrics
from normalizer.settings import NormalizerSettings, parse_settings

__all__ = [
    "EventMapper",
    "KafkaRecord",
    "Normalized",
    "NormalizerProcessor",
    "Stats",
    "build_mapper",
    "main",
    "map_record",
    "normalize_record",
    "run",
    "stage_settings",
]

Logger = structlog.stdlib.BoundLogger


class EventMapper(Protocol):
    """What the service needs of :class:`normalizer.normalizer.Normalizer`."""

    def normalize(self, raw: RawEvent) -> CloudEvent: ...


class KafkaRecord(ConsumedRecord, Protocol):
    """The parts of a consumed record (aiokafka's ``ConsumerRecord``) that are read here."""

    timestamp: int


def build_mapper(config: HookbusConfig) -> EventMapper:
    """The normalizer for the configured sources. Every source's mapping is checked here,
    so a bad one is a :class:`~hookbus.errors.ConfigError` at startup."""
    from normalizer.normalizer import Normalizer

    return Normalizer({source.name: source for source in config.sources})


@dataclass(frozen=True, slots=True)
class Normalized:
    """A raw record's event, and that event as the normalizer publishes it."""

    event: CloudEvent
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


def normalize_record(
    mapper: EventMapper, headers: KafkaHeaders | None, value: bytes | None, mode: Mode
) -> Normalized | Failure:
    """What the normalizer makes of one raw record: its event, mapped, validated and encoded for
    the events topic, or why it cannot be. The encoding is part of it, so that an event that
    cannot be encoded is that record's failure too. An unexpected exception is raised: the
    stage runtime contains it (offline, :func:`map_record`)."""
    try:
        raw = RawEvent.from_kafka(headers, value)
    except RawEventError as exc:
        return Failure.of(exc, stage=STAGE_READ)
    try:
        event = mapper.normalize(raw)
    except NORMALIZE_ERRORS as exc:
        return Failure.of(exc, stage=exc.stage)
    key, encoded, event_headers = event.to_kafka(mode)
    return Normalized(event, key, encoded, event_headers)


def map_record(
    mapper: EventMapper, headers: KafkaHeaders | None, value: bytes | None, *, mode: Mode, tries: int
) -> Normalized | Failure:
    """:func:`normalize_record` with an unexpected exception contained as the running normalizer
    contains it: after ``tries`` it is the record's failure (stage ``normalize``, reason
    ``internal_error``), for the offline tools to report as the dead letter it would be.
    Never raises an Exception."""
    work = functools.partial(normalize_record, mapper, headers, value, mode)
    return contained(work, attempts=tries, stage=STAGE_NORMALIZE)


STATS_MOST_LABELS = 20
"""A stats line names at most this many event types (and as many reasons); the rest are summed."""


@dataclass(slots=True)
class Stats:
    """Counts of what was normalized: totals, and the breakdown since the last stats line.

    A line every ``stats_interval_seconds`` only when something was normalized in it, and
    naming what: an idle normalizer is quiet, and a busy one's line does not grow with every
    type it has ever seen (the totals by type are the metrics' job)."""

    records: int = 0
    events: int = 0
    dead_letters: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)

    def count(self, published: Iterable[Outgoing]) -> None:
        for item in published:
            self.records += 1
            if item.dead_letter:
                self.dead_letters += 1
                self.dead_letters_by_reason[item.label] += 1
            else:
                self.events += 1
                self.events_by_type[item.label] += 1

    def log_changes(self, log: Logger, message: str) -> None:
        """:meth:`log`, but only when something came since the previous line."""
        if self.events_by_type or self.dead_letters_by_reason:
            self.log(log, message)

    def log(self, log: Logger, message: str) -> None:
        """Log the totals and what came since the previous line."""
        log.info(
            message,
            records=self.records,
            events=self.events,
            dead_letters=self.dead_letters,
            events_by_type=_most_common(self.events_by_type),
            dead_letters_by_reason=_most_common(self.dead_letters_by_reason),
        )
        self.events_by_type.clear()
        self.dead_letters_by_reason.clear()


def _most_common(counts: Counter[str]) -> dict[str, int]:
    shown = dict(counts.most_common(STATS_MOST_LABELS))
    rest = counts.total() - sum(shown.values())
    return {**shown, "(others)": rest} if rest else shown


class NormalizerProcessor:
    """A raw record in, its CloudEvent (or why there is none) out."""

    stage = STAGE_NORMALIZE

    def __init__(
        self, mapper: EventMapper, settings: NormalizerSettings, events_topic: str, metrics: NormalizerMetrics
    ) -> None:
        self._mapper = mapper
        self._settings = settings
        self._events_topic = events_topic
        self._metrics = metrics
        self.stats = Stats()

    def process(self, record: ConsumedRecord) -> Sequence[Output] | Failure:
        result = normalize_record(self._mapper, record.headers, record.value, self._settings.mode)
        if isinstance(result, Failure):
            return result
        return [Output(self._events_topic, result.key, result.value, result.headers, label=result.event.type)]

    def published(self, outgoing: Sequence[Outgoing]) -> None:
        self.stats.count(outgoing)
        self._metrics.count(outgoing)


def stage_settings(config: HookbusConfig, settings: NormalizerSettings) -> StageSettings:
    """How the runtime runs the normalizer: the raw topic in, the pipeline's topics created."""
    kafka = config.kafka
    return StageSettings(
        topic=kafka.raw_topic,
        group_id=settings.group_id,
        dead_letter_topic=kafka.dlq_topic,
        topics=hookbus_topics(config),
        batch_size=settings.batch_size,
        # Each record is mapped and published on its own, so waiting for a batch to fill would
        # only add latency: a batch is what one fetch returns, waiting batch_timeout_ms for it.
        batch_timeout_seconds=0.0,
        fetch_wait_seconds=settings.batch_timeout_ms / 1000,
        retry_initial_seconds=settings.retry_backoff_ms / 1000,
        retry_max_seconds=settings.retry_backoff_max_ms / 1000,
        max_attempts=settings.max_attempts,
        ops=config.ops,
    )


async def run(config: HookbusConfig, *, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run the normalizer until ``stop`` is set, then finish the batch in flight, commit and return.

    ``ready`` is set once the clients are connected and subscribed. Bad settings or a bad
    source mapping raise :class:`~hookbus.errors.ConfigError` before anything connects; a
    broker that cannot be reached at startup raises :class:`~hookbus.errors.KafkaUnavailableError`.
    """
    settings = parse_settings(config.normalizer, path=config.path)
    mapper = build_mapper(config)
    log = get_logger(service="normalizer", group_id=settings.group_id, raw_topic=config.kafka.raw_topic)
    processor = NormalizerProcessor(mapper, settings, config.kafka.events_topic, NormalizerMetrics(config.sources))
    runtime = StageRuntime(
        config.kafka,
        stage_settings(config, settings),
        ProcessorStage(processor),
        max_record_bytes=max_record_bytes(config),
        log=log,
        stop=stop,
    )
    async with runtime.started() as started:
        if not started:
            return
        log.info("normalizer_started", events_topic=config.kafka.events_topic, mode=settings.mode.value)
        if ready is not None:
            ready.set()
        stats_task = asyncio.create_task(_log_stats_every(settings.stats_interval_seconds, processor.stats, log))
        try:
            await runtime.consume()
        finally:
            stats_task.cancel()
            processor.stats.log(log, "normalizer_stopped")


async def _log_stats_every(seconds: float, stats: Stats, log: Logger) -> None:
    while True:
        await asyncio.sleep(seconds)
        stats.log_changes(log, "normalizer_stats")


def main(args: argparse.Namespace) -> int:
    """``hookbus normalizer``: run until SIGTERM or SIGINT; 0 after a clean stop, 1 when Kafka cannot be reached."""
    config = load_config(args.config)
    return asyncio.run(_serve(config))


async def _serve(config: HookbusConfig) -> int:
    try:
        with stop_on_signals() as stop:
            await run(config, stop=stop)
    except KafkaUnavailableError as exc:
        get_logger(service="normalizer").error("kafka_unavailable", reason=exc.reason, detail=exc.detail)
        return 1
    except UnsafeTopicsError as exc:
        get_logger(service="normalizer").error("unsafe_topics", **exc.log_fields())
        return 1
    return 0
