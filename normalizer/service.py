"""``hookbus normalizer``: raw topic in, CloudEvents out, what cannot be mapped aside.

A consumer group (``normalizer.group_id``) reads the raw topic in batches. Each record
becomes either a CloudEvent on the events topic - in the CloudEvents Kafka binding
(``normalizer.mode``), keyed by its partition key so one entity's events share a partition
and keep their order - or a dead letter on the dead-letter topic: the original record with
``hookbus-dlq-*`` headers (see :mod:`normalizer.deadletter`).

Delivery is at-least-once, committed after the acknowledgement: a batch's offsets are
committed only once every event and dead letter it produced is acknowledged (acks=all) by
Kafka. Nothing is lost: a crash before the commit replays the batch. What that replay
duplicates carries the same event id, since ids are derived from the raw event, so the
sinks, which upsert by id, absorb it. Kafka transactions (exactly-once) were not chosen:
they would not make the sinks exactly-once anyway (an HTTP forward or a database sits
outside the transaction, so idempotence by id is needed regardless), they add a
transaction round trip to every batch and a transactional id per instance to manage, and
they make the events invisible to ``read_committed`` readers until the commit.

Order: records of one raw partition are published in order (the producer is idempotent,
which keeps order across its internal retries), every acknowledgement of a batch is
awaited before the next batch is read, and a send that fails is retried together with
everything sent after it, so the last copy of each event is always in order.

Failures never stop a partition. A record that is not a raw event, names an unknown
source, does not parse, or violates the schema is dead-lettered at once. An unexpected
exception of the normalizer is that record's failure: after ``max_attempts`` tries it is
dead-lettered (stage ``normalize``, reason ``internal_error``). Transient Kafka errors are
retried with capped exponential backoff and jitter, forever. Kafka refuses a whole
producer batch for one bad record, so after a refusal the batch's remaining records are
sent one at a time, each acknowledged before the next: only an event Kafka refuses on its
own (too large, say) is counted against, and dead-lettered after ``max_attempts`` tries.

On a rebalance the batch in flight is finished and committed before the partitions are
given up. SIGTERM finishes the batch, commits, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import signal
import traceback
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaConnectionError, KafkaError, KafkaTimeoutError

from hookbus.cloudevent import CloudEvent
from hookbus.config import HookbusConfig, load_config
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import ensure_topics, hookbus_topics, make_consumer, make_producer, max_record_bytes
from hookbus.logging import configure_logging, get_logger
from hookbus.rawevent import RawEvent, RawEventError
from normalizer.deadletter import (
    REASON_INTERNAL_ERROR,
    REASON_PUBLISH_FAILED,
    STAGE_NORMALIZE,
    STAGE_PUBLISH,
    Failure,
    Origin,
    dead_letter_headers,
)
from normalizer.errors import NORMALIZE_ERRORS
from normalizer.settings import NormalizerSettings, parse_settings

Logger = structlog.stdlib.BoundLogger
KafkaHeaders = Sequence[tuple[str, bytes]]


class EventMapper(Protocol):
    """What the service needs of :class:`normalizer.canonical.Normalizer`."""

    def normalize(self, raw: RawEvent) -> CloudEvent: ...


class KafkaRecord(Protocol):
    """The parts of a consumed record (aiokafka's ``ConsumerRecord``) that are read here."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders


def build_mapper(config: HookbusConfig) -> EventMapper:
    """The normalizer for the configured sources. Every source's mapping is checked here,
    so a bad one is a :class:`~hookbus.errors.ConfigError` at startup."""
    from normalizer.canonical import Normalizer

    return Normalizer({source.name: source for source in config.sources})


def map_record(
    mapper: EventMapper, headers: KafkaHeaders | None, value: bytes | None, *, tries: int
) -> CloudEvent | Failure:
    """The event a raw record maps to, or why it cannot be mapped. Never raises an Exception."""
    try:
        raw = RawEvent.from_kafka(headers, value)
    except RawEventError as exc:
        return Failure.of(exc)
    unexpected: Exception | None = None
    for _ in range(max(1, tries)):
        try:
            return mapper.normalize(raw)
        except NORMALIZE_ERRORS as exc:
            return Failure.of(exc)
        except Exception as exc:
            # Mapping is pure, but a failure of the process (memory, a lazily read schema
            # file) may pass; a bug will not, and then the record is dead-lettered instead
            # of stopping its partition.
            unexpected = exc
            get_logger(service="normalizer").error(
                "normalize_raised", error=type(exc).__name__, where=_where(exc), source=raw.source
            )
    assert unexpected is not None
    return Failure.unexpected(STAGE_NORMALIZE, REASON_INTERNAL_ERROR, unexpected)


def _where(error: BaseException) -> str:
    """The innermost frame of ``error``'s traceback: file, line and function, never the message."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


def is_transient(error: BaseException) -> bool:
    """Whether a Kafka error may go away by itself (the broker is down, slow or moving a leader)."""
    if isinstance(error, KafkaUnavailableError):
        return True
    return isinstance(error, KafkaError) and (
        bool(error.retriable) or isinstance(error, KafkaTimeoutError | KafkaConnectionError)
    )


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter: each delay is drawn from the upper half of
    ``initial * 2**n`` (at most ``cap``), so restarted instances do not retry in step."""

    initial: float
    cap: float
    _attempt: int = 0
    _random: random.Random = field(default_factory=random.SystemRandom)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return self._random.uniform(ceiling / 2, ceiling)

    async def wait(self, stop: asyncio.Event) -> bool:
        """Sleep for the next delay; ``False`` (at once) when ``stop`` is set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.next_delay())
        return not stop.is_set()


@dataclass(slots=True)
class Outgoing:
    """One record to publish and the raw record it stands for."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    raw: KafkaRecord
    label: str
    """The event type, or the dead letter's reason: what the stats count."""
    dead_letter: bool

    @property
    def origin(self) -> Origin:
        return Origin(self.raw.topic, self.raw.partition, self.raw.offset)


@dataclass(slots=True)
class Stats:
    """Running totals, logged every ``stats_interval_seconds`` and at shutdown."""

    records: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)

    def count(self, published: Iterable[Outgoing]) -> None:
        for item in published:
            self.records += 1
            by_label = self.dead_letters_by_reason if item.dead_letter else self.events_by_type
            by_label[item.label] += 1

    def log(self, log: Logger, message: str) -> None:
        log.info(
            message,
            records=self.records,
            events=sum(self.events_by_type.values()),
            dead_letters=sum(self.dead_letters_by_reason.values()),
            events_by_type=dict(self.events_by_type),
            dead_letters_by_reason=dict(self.dead_letters_by_reason),
        )


class _FinishBatchOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in flight is published and committed."""

    def __init__(self, batch_lock: asyncio.Lock, log: Logger) -> None:
        self._batch_lock = batch_lock
        self._log = log

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._batch_lock:
            self._log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))


class NormalizerService:
    """The consume - map - publish - commit loop over a started consumer; it owns its producer."""

    def __init__(
        self,
        config: HookbusConfig,
        settings: NormalizerSettings,
        mapper: EventMapper,
        *,
        consumer: AIOKafkaConsumer,
        log: Logger,
    ) -> None:
        self._kafka = config.kafka
        self._settings = settings
        self._mapper = mapper
        self._consumer = consumer
        self._new_producer = functools.partial(make_producer, config.kafka, max_request_size=max_record_bytes(config))
        self._producer: AIOKafkaProducer = self._new_producer()
        self._log = log
        self.stats = Stats()
        self.batch_lock = asyncio.Lock()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        """Stop the producer, once what it holds is delivered."""
        await self._producer.stop()

    async def _reset_producer(self) -> None:
        # After Kafka refused a batch, the idempotent producer's sequence numbers for that
        # partition no longer match the broker's (every later send would fail with
        # OutOfOrderSequenceNumber): a new producer starts a new sequence.
        await self._producer.stop()
        self._producer = self._new_producer()
        await self._producer.start()

    def backoff(self) -> Backoff:
        return Backoff(self._settings.retry_backoff_ms / 1000, self._settings.retry_backoff_max_ms / 1000)

    async def consume(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set; the batch in flight then is finished and committed."""
        backoff = self.backoff()
        while not stop.is_set():
            try:
                batch: Mapping[TopicPartition, list[KafkaRecord]] = await self._consumer.getmany(
                    timeout_ms=self._settings.batch_timeout_ms, max_records=self._settings.batch_size
                )
            except KafkaError as exc:
                if not is_transient(exc):
                    raise
                self._log.warning("fetch_retry", error=type(exc).__name__)
                await backoff.wait(stop)
                continue
            backoff = self.backoff()
            if not batch:
                continue
            async with self.batch_lock:
                # Records of partitions revoked since they were fetched are left to their new
                # owner, which reads them from the last commit.
                assigned = self._consumer.assignment()
                owned = {tp: records for tp, records in batch.items() if records and tp in assigned}
                if owned:
                    await self._process(owned, stop)

    async def _process(self, batch: Mapping[TopicPartition, list[KafkaRecord]], stop: asyncio.Event) -> None:
        outgoing = [self._outgoing(record) for records in batch.values() for record in records]
        if not await self._publish(outgoing, stop):
            self._log.warning("batch_abandoned", records=len(outgoing), why="stopping while Kafka is unavailable")
            return
        await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items()}, stop)
        self.stats.count(outgoing)

    def _outgoing(self, record: KafkaRecord) -> Outgoing:
        result = map_record(self._mapper, record.headers, record.value, tries=self._settings.max_attempts)
        if isinstance(result, Failure):
            return self._dead_letter(record, result)
        key, value, headers = result.to_kafka(self._settings.mode)
        return Outgoing(self._kafka.events_topic, key, value, headers, record, result.type, dead_letter=False)

    def _dead_letter(self, record: KafkaRecord, failure: Failure) -> Outgoing:
        origin = Origin(record.topic, record.partition, record.offset)
        self._log.warning(
            "dead_lettered",
            stage=failure.stage,
            reason=failure.reason,
            detail=failure.detail,
            partition=origin.partition,
            offset=origin.offset,
        )
        headers = dead_letter_headers(record.headers, failure, origin)
        return Outgoing(self._kafka.dlq_topic, record.key, record.value, headers, record, failure.reason, True)

    async def _publish(self, outgoing: list[Outgoing], stop: asyncio.Event) -> bool:
        """Publish ``outgoing`` in order and wait for every acknowledgement; ``False`` if
        ``stop`` was set while Kafka kept failing. An event Kafka refuses for good is
        replaced, in ``outgoing``, by its raw record's dead letter after ``max_attempts``."""
        refusals: Counter[Origin] = Counter()
        backoff = self.backoff()
        start = 0
        one_by_one = False
        while True:
            if one_by_one:
                failed = await self._send_one_by_one(outgoing, start)
            else:
                errors = await self._send_together(outgoing[start:])
                failed = [(start + index, error) for index, error in enumerate(errors) if error is not None]
            if not failed:
                return True
            # Everything from the first failure on is sent again, so the last copy of each
            # event is in order even when a later send succeeded.
            start = failed[0][0]
            refused = [(index, error) for index, error in failed if not is_transient(error)]
            if refused:
                await self._reset_producer()
                if one_by_one:
                    self._count_refusal(outgoing, *refused[0], refusals)
                # Kafka refuses a whole producer batch for one bad record: from here on each
                # record is sent alone, so only the bad one is counted against.
                one_by_one = True
            self._log.warning("publish_retry", failed=len(failed), resending=len(outgoing) - start)
            if not await backoff.wait(stop):
                return False

    def _count_refusal(
        self, outgoing: list[Outgoing], index: int, error: BaseException, refusals: Counter[Origin]
    ) -> None:
        item = outgoing[index]
        refusals[item.origin] += 1
        self._log.error("publish_refused", topic=item.topic, error=type(error).__name__, offset=item.origin.offset)
        # A dead letter is never given up on: that would lose the record.
        if not item.dead_letter and refusals[item.origin] >= self._settings.max_attempts:
            failure = Failure.unexpected(STAGE_PUBLISH, REASON_PUBLISH_FAILED, error)
            outgoing[index] = self._dead_letter(item.raw, failure)

    async def _send_one_by_one(self, outgoing: Sequence[Outgoing], start: int) -> list[tuple[int, BaseException]]:
        """Send from ``start``, each record acknowledged before the next; stops at the first failure."""
        for index in range(start, len(outgoing)):
            [error] = await self._send_together(outgoing[index : index + 1])
            if error is not None:
                return [(index, error)]
        return []

    async def _send_together(self, items: Sequence[Outgoing]) -> list[BaseException | None]:
        """Send ``items`` in order, then wait for all their acknowledgements; the error of each, if any."""
        loop = asyncio.get_running_loop()
        acknowledgements: list[asyncio.Future[Any]] = []
        for item in items:
            try:
                acknowledgement = await self._producer.send(item.topic, item.value, key=item.key, headers=item.headers)
            except Exception as exc:
                # Refused before it left (too large, no metadata in time): a failed
                # acknowledgement, so it is retried in its place.
                acknowledgement = loop.create_future()
                acknowledgement.set_exception(exc)
            acknowledgements.append(acknowledgement)
        results = await asyncio.gather(*acknowledgements, return_exceptions=True)
        return [result if isinstance(result, BaseException) else None for result in results]

    async def _commit(self, offsets: dict[TopicPartition, int], stop: asyncio.Event) -> None:
        backoff = self.backoff()
        while True:
            try:
                await self._consumer.commit(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on: the partitions' new owner reads from the last commit and
                # publishes this batch again, with the same event ids.
                self._log.warning("commit_lost_to_rebalance", error=type(exc).__name__)
                return
            except KafkaError as exc:
                if not is_transient(exc):
                    raise
                self._log.warning("commit_retry", error=type(exc).__name__)
                if not await backoff.wait(stop):
                    return


async def run(config: HookbusConfig, *, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run the normalizer until ``stop`` is set, then finish the batch in flight, commit and return.

    ``ready`` is set once the clients are connected and subscribed. Bad settings or a bad
    source mapping raise :class:`~hookbus.errors.ConfigError` before anything connects; a
    broker that cannot be reached at startup raises :class:`~hookbus.errors.KafkaUnavailableError`.
    """
    settings = parse_settings(config.normalizer, path=config.path)
    mapper = build_mapper(config)
    log = get_logger(service="normalizer", group_id=settings.group_id, raw_topic=config.kafka.raw_topic)
    await ensure_topics(config.kafka, hookbus_topics(config))
    consumer = make_consumer(config.kafka, group_id=settings.group_id, max_record_size=max_record_bytes(config))
    service = NormalizerService(config, settings, mapper, consumer=consumer, log=log)
    consumer.subscribe([config.kafka.raw_topic], listener=_FinishBatchOnRevoke(service.batch_lock, log))
    try:
        try:
            await service.start()
            await consumer.start()
        except KafkaError as exc:
            raise KafkaUnavailableError(f"cannot connect to {config.kafka.bootstrap_servers}: {exc!r}") from exc
        log.info("normalizer_started", events_topic=config.kafka.events_topic, mode=settings.mode.value)
        if ready is not None:
            ready.set()
        stats_task = asyncio.create_task(_log_stats_every(settings.stats_interval_seconds, service.stats, log))
        try:
            await service.consume(stop)
        finally:
            stats_task.cancel()
            service.stats.log(log, "normalizer_stopped")
    finally:
        # Stopping commits nothing: what was not committed after its acknowledgement is read again.
        await consumer.stop()
        await service.stop()


async def _log_stats_every(seconds: float, stats: Stats, log: Logger) -> None:
    while True:
        await asyncio.sleep(seconds)
        stats.log(log, "normalizer_stats")


def main(args: argparse.Namespace) -> int:
    """``hookbus normalizer``: run until SIGTERM or SIGINT; 0 after a clean stop, 1 when Kafka cannot be reached."""
    configure_logging(getattr(args, "log_level", "info"))
    config = load_config(args.config)
    return asyncio.run(_serve(config))


async def _serve(config: HookbusConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run(config, stop=stop)
    except KafkaUnavailableError as exc:
        get_logger(service="normalizer").error("kafka_unavailable", reason=exc.reason, detail=exc.detail)
        return 1
    return 0
