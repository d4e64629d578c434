"""Publishing accepted requests: the step between "verified" and "answered 2xx".

The gateway's handler knows only the :class:`Publisher` protocol: ``publish`` returns once
the event is durable (a :class:`Receipt` from Kafka or a :class:`SpoolReceipt` from the local
spool) or raises a retriable error, which the handler answers with 503 so the sender tries
again. :class:`KafkaPublisher` is durable once every in-sync replica acknowledged.
:class:`SpoolingPublisher` wraps it for sources with ``spool: true`` (providers that never
retry): when Kafka does not acknowledge within the deadline, the event is fsynced to the
local spool of that source (:mod:`ingest.spool`) instead, and a drainer per spool publishes
it to Kafka in order once it is back, while new events go to Kafka directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata

from hookbus.config import HookbusConfig
from hookbus.errors import HookbusError, KafkaUnavailableError
from hookbus.kafka import make_producer, max_record_bytes
from hookbus.logging import get_logger
from hookbus.ops_server import ACKS_FAILING, KAFKA_UNREACHABLE, ClusterProbe
from hookbus.rawevent import RawEvent
from hookbus.request import Reason
from hookbus.stage.backoff import Backoff
from ingest.errors import IngestError, PublishTimeoutError, described
from ingest.spool import SourceClaims, Spool, SpoolDepth, Spooled, SpoolRecord, set_aside

DRAIN_BATCH_RECORDS = 500
DRAIN_RETRY_INITIAL_SECONDS = 0.2
DRAIN_RETRY_MAX_SECONDS = 5.0
# Under the spool root, beside the sources' spools: records Kafka refuses for good, kept for an operator.
UNDELIVERABLE_DIRECTORY = "undeliverable"
DEPTH_LOG_INTERVAL_SECONDS = 10.0
# Of the ack timeout, how long the producer's request to a broker may take: one stuck on a
# frozen broker fails, and is retried on fresh metadata, while its sender still waits.
PRODUCER_REQUEST_TIMEOUT_SHARE = 2 / 3


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an event was made durable: a Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolReceipt:
    """The event was fsynced to the local spool and waits there for Kafka."""

    spool: str


Stored = Receipt | SpoolReceipt


class Publisher(Protocol):
    """Makes an accepted raw event durable before the sender is answered."""

    async def publish(self, event: RawEvent, *, kafka_until: float | None = None) -> Stored:
        """Return once the event is durable.

        Kafka is waited for until ``kafka_until`` (:func:`time.monotonic`) or the ack timeout,
        whichever comes first; an event whose ``kafka_until`` has passed is not offered to Kafka.
        Raises a retriable :class:`~hookbus.errors.HookbusError` (reason ``kafka_unavailable``,
        or ``spool_full``) when that did not happen within the deadline; the event may still
        arrive later, so a sender that retries can cause a duplicate (delivery is at least once).
        """
        ...

    async def not_ready_reasons(self) -> list[str]:
        """What keeps a publish from succeeding now (:mod:`hookbus.ops_server`); empty when none."""
        ...


def _new_backoff() -> Backoff:
    return Backoff(DRAIN_RETRY_INITIAL_SECONDS, DRAIN_RETRY_MAX_SECONDS)


def record_of(event: RawEvent) -> SpoolRecord:
    """The Kafka record of a raw event: keyed by its source, ``hookbus-*`` headers, the body as value."""
    return SpoolRecord(key=event.kafka_key, headers=tuple(event.kafka_headers()), value=event.body)


@contextlib.contextmanager
def _as_hookbus_errors(ack_timeout: float) -> Iterator[None]:
    try:
        yield
    except TimeoutError as exc:
        raise PublishTimeoutError(f"Kafka did not acknowledge within {ack_timeout:g} s") from exc
    except MessageSizeTooLargeError as exc:
        # The request's headers pushed the record past the topic's limit: retrying cannot help.
        raise IngestError("the request is too large to keep", reason=Reason.TOO_LARGE, retriable=False) from exc
    except KafkaError as exc:
        raise KafkaUnavailableError(f"Kafka refused the record: {type(exc).__name__}") from exc


def _retrieve(future: asyncio.Future[RecordMetadata]) -> None:
    # A send given up on may still fail later, when nobody awaits it any more: that is not news.
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A record handed to the producer: its acknowledgement may come after anyone stopped waiting."""

    future: asyncio.Future[RecordMetadata]
    ack_timeout: float

    @property
    def failed(self) -> bool:
        return self.future.done() and (self.future.cancelled() or self.future.exception() is not None)

    async def receipt(self, timeout: float) -> Receipt:
        """Wait up to ``timeout`` seconds for the acknowledgement, without giving up the send itself.

        The producer's future is shielded: cancelling it would not stop the record from being
        sent, only hide whether it was.
        """
        with _as_hookbus_errors(self.ack_timeout):
            async with asyncio.timeout(max(0.0, timeout)):
                metadata = await asyncio.shield(self.future)
        return Receipt(topic=metadata.topic, partition=metadata.partition, offset=metadata.offset)


def producer_request_timeout(config: HookbusConfig) -> float:
    """The gateway's producer's request timeout: ``kafka.request_timeout_seconds``, cut to fit the ack timeout."""
    return min(
        config.kafka.request_timeout_seconds, config.gateway.ack_timeout_seconds * PRODUCER_REQUEST_TIMEOUT_SHARE
    )


class KafkaPublisher:
    """Publishes to the raw topic with an idempotent ``acks=all`` producer it owns."""

    def __init__(self, new_producer: Callable[[], AIOKafkaProducer], *, topic: str, ack_timeout: float) -> None:
        self._new_producer = new_producer
        self._producer: AIOKafkaProducer | None = None
        self._topic = topic
        self._ack_timeout = ack_timeout
        self._cluster: ClusterProbe | None = None
        self._acks_timing_out = False

    @classmethod
    def from_config(cls, config: HookbusConfig) -> KafkaPublisher:
        return cls(
            functools.partial(
                make_producer,
                config.kafka,
                max_request_size=max_record_bytes(config),
                request_timeout_ms=round(producer_request_timeout(config) * 1000),
            ),
            topic=config.kafka.raw_topic,
            ack_timeout=config.gateway.ack_timeout_seconds,
        )

    @property
    def ack_timeout(self) -> float:
        return self._ack_timeout

    async def start(self) -> None:
        """Connect the producer; may be called again after it raised, with a fresh producer."""
        producer = self._new_producer()
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise KafkaUnavailableError(f"cannot start the Kafka producer: {exc!r}") from exc
        self._producer = producer
        self._cluster = ClusterProbe(producer.client, [self._topic])

    async def stop(self) -> None:
        """Deliver what is still buffered, then close the producer."""
        if self._producer is not None:
            await self._producer.stop()

    def wait_until(self, kafka_until: float | None) -> float:
        """When a publish starting now stops waiting for Kafka: after the ack timeout, or at ``kafka_until``."""
        deadline = time.monotonic() + self._ack_timeout
        return deadline if kafka_until is None else min(deadline, kafka_until)

    async def publish(self, event: RawEvent, *, kafka_until: float | None = None) -> Receipt:
        deadline = self.wait_until(kafka_until)
        if deadline <= time.monotonic():
            raise PublishTimeoutError("no time was left to wait for Kafka")
        delivery = await self.send(record_of(event), timeout=deadline - time.monotonic())
        try:
            receipt = await delivery.receipt(deadline - time.monotonic())
        except PublishTimeoutError:
            self._acks_timing_out = True
            raise
        self._acks_timing_out = False
        return receipt

    async def send(self, record: SpoolRecord, *, timeout: float | None = None) -> Delivery:
        """Hand ``record`` to the producer (waiting at most ``timeout``, by default the ack
        timeout, for room or metadata)."""
        if self._producer is None:
            raise KafkaUnavailableError("the Kafka producer is not connected yet")
        with _as_hookbus_errors(self._ack_timeout):
            # Cancelling send() itself (unlike its future) means the record was never queued.
            async with asyncio.timeout(self._ack_timeout if timeout is None else timeout):
                future = await self._producer.send(
                    self._topic, record.value, key=record.key, headers=list(record.headers)
                )
        future.add_done_callback(_retrieve)
        return Delivery(future, self._ack_timeout)

    async def not_ready_reasons(self) -> list[str]:
        """The cluster's answer about the raw topic (cached for about a second, so probes do not
        hammer the broker), and whether the last direct publish timed out."""
        if self._cluster is None:
            return [KAFKA_UNREACHABLE]
        reasons = list(await self._cluster.not_ready_reasons())
        return [*reasons, ACKS_FAILING] if self._acks_timing_out else reasons


@dataclass(slots=True)
class _SourceSpool:
    """One spooling source's spools: the slot it writes and older slots it only drains."""

    own: Spool
    adopted: list[Spool]

    def depth(self) -> SpoolDepth:
        depth = self.own.depth()
        for spool in self.adopted:
            depth += spool.depth()
        return depth


class SpoolingPublisher:
    """A :class:`KafkaPublisher` that falls back on a local spool per source for the sources that need it.

    Every event goes to Kafka first. For a spooling source, if Kafka does not acknowledge
    within the deadline the event is fsynced to that source's spool and the sender gets 200.
    Each spool drains in order on its own task, concurrently with new traffic: a new event
    never waits behind a spool, its own source's or another's, so a source is spooled only
    when its own publish was not acknowledged in time. An event published while older events
    of its source still wait in the spool therefore reaches Kafka before them
    (docs/reliability.md says what that does to order). Other sources are published directly
    and get 503 when Kafka does not acknowledge.

    A send that timed out is not cancelled (the producer may still deliver it): the drainer
    first waits for it, and publishes the spooled copy only if it failed. So the same event
    reaches Kafka twice only when a process died in between or the send failed after
    reaching the broker; both copies carry the same ``hookbus-ingest-id`` for deduplication.
    """

    def __init__(self, kafka: KafkaPublisher, claims: SourceClaims, *, undeliverable: Path) -> None:
        self._kafka = kafka
        self._sources = {
            source: _SourceSpool(claimed.own, list(claimed.adopted)) for source, claimed in claims.by_source.items()
        }
        self._shared = list(claims.shared)
        self._undeliverable = undeliverable
        # Sends given up on, by ingest id, that may still be acknowledged.
        self._pending: dict[str, Delivery] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._log = get_logger(service="gateway")

    def start(self) -> None:
        """Start one drainer per spool (the producer may connect later: the drainers wait for it).

        One batch in flight per spool bounds how much the drain adds to the producer's queue.
        """
        drainers = [self._drain_forever(source.own) for source in self._sources.values()]
        drainers += [self._drain_adopted(source) for source in self._sources.values() if source.adopted]
        drainers += [self._drain_shared(spool) for spool in self._shared]
        self._tasks = [asyncio.create_task(drainer, name="spool-drainer") for drainer in drainers]
        self._tasks.append(asyncio.create_task(self._report_depth(), name="spool-depth"))

    async def stop(self) -> None:
        """Stop draining and close the spools; what is left drains after the next start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for source in self._sources.values():
            for spool in [*source.adopted, source.own]:
                await spool.close(remove_if_empty=True)
        for spool in self._shared:
            await spool.close(remove_if_empty=True)
        depth = self.depth()
        self._log.info("spool_closed", records=depth.records, bytes=depth.bytes)

    def depth(self) -> SpoolDepth:
        """What waits in this process's spools, every source's and the shared ones together."""
        depth = SpoolDepth(0, 0)
        for source_depth in self.depth_by_source().values():
            depth += source_depth
        for spool in self._shared:
            depth += spool.depth()
        return depth

    def depth_by_source(self) -> dict[str, SpoolDepth]:
        """What waits for each spooling source (records in the shared slots of an older version are not included)."""
        return {name: source.depth() for name, source in self._sources.items()}

    def limits_by_source(self) -> dict[str, int]:
        """The bytes each spooling source's spool may hold (its share of ``spool_max_bytes``)."""
        return {name: source.own.max_bytes for name, source in self._sources.items()}

    async def not_ready_reasons(self) -> list[str]:
        return await self._kafka.not_ready_reasons()

    async def publish(self, event: RawEvent, *, kafka_until: float | None = None) -> Stored:
        source = self._sources.get(event.source)
        if source is None:
            return await self._kafka.publish(event, kafka_until=kafka_until)
        record = record_of(event)
        deadline = self._kafka.wait_until(kafka_until)
        if deadline <= time.monotonic():
            # Shed (ingest.admission): the gateway is over its bounds, so the event goes
            # straight to the spool rather than into the producer's queue.
            return await self._spool(source.own, record)
        delivery: Delivery | None = None
        try:
            delivery = await self._kafka.send(record, timeout=deadline - time.monotonic())
            return await delivery.receipt(deadline - time.monotonic())
        except HookbusError as exc:
            if not exc.retriable:
                raise
        except Exception as exc:
            # Not Kafka's own failure (a bug in the producer or in this code): the sender never
            # retries, so the event is kept in the spool rather than answered with a 5xx.
            self._log.error("publish_failed", source=event.source, ingest_id=event.ingest_id, **described(exc))
        if delivery is not None and not delivery.future.done():
            self._pending[record.ingest_id] = delivery
        return await self._spool(source.own, record)

    async def _spool(self, spool: Spool, record: SpoolRecord) -> SpoolReceipt:
        try:
            await spool.append(record)
        except HookbusError:
            # Refused (503): there is no spooled copy for a late acknowledgement to stand in for.
            self._pending.pop(record.ingest_id, None)
            raise
        return SpoolReceipt(spool=str(spool.directory))

    async def _drain_forever(self, spool: Spool) -> None:
        backoff = _new_backoff()
        while True:
            backoff = await self._drain_batch_or_back_off(spool, backoff)

    async def _drain_until_empty(self, spool: Spool) -> None:
        backoff = _new_backoff()
        while spool.depth().records:
            backoff = await self._drain_batch_or_back_off(spool, backoff)
        await spool.close(remove_if_empty=True)
        self._log.info("spool_adopted_drained", spool=str(spool.directory))

    async def _drain_adopted(self, source: _SourceSpool) -> None:
        for spool in list(source.adopted):
            await self._drain_until_empty(spool)
            source.adopted.remove(spool)

    async def _drain_shared(self, spool: Spool) -> None:
        await self._drain_until_empty(spool)
        self._shared.remove(spool)

    async def _drain_batch_or_back_off(self, spool: Spool, backoff: Backoff) -> Backoff:
        """One batch, then the backoff for the next; an unexpected error is logged and retried
        later, since a drainer that died would leave the spool to grow until it is full."""
        try:
            return await self._drain_batch(spool, backoff)
        except Exception as exc:
            self._log.error("spool_drain_failed", spool=str(spool.directory), **described(exc))
            await asyncio.sleep(backoff.next_delay())
            return backoff

    async def _drain_batch(self, spool: Spool, backoff: Backoff) -> Backoff:
        """Publish the oldest records in order; acknowledge the longest delivered prefix, back off on a failure."""
        batch = await spool.read(max_records=DRAIN_BATCH_RECORDS)
        delivered = await self._deliver_in_order(batch)
        if delivered is not None:
            await spool.acknowledge(delivered)
        if delivered is not batch[-1]:
            await asyncio.sleep(backoff.next_delay())
            return backoff
        return _new_backoff()

    async def _deliver_in_order(self, batch: list[Spooled]) -> Spooled | None:
        """The last record of ``batch`` up to which every record is in Kafka, or ``None``."""
        sends: list[tuple[Spooled, Delivery]] = []
        for spooled in batch:
            delivery = self._pending.pop(spooled.record.ingest_id, None)
            if delivery is None or delivery.failed:
                try:
                    delivery = await self._kafka.send(spooled.record)
                except HookbusError as exc:
                    if not sends and not exc.retriable:
                        self._give_up(spooled, exc)
                        return spooled
                    break
            sends.append((spooled, delivery))
        delivered: Spooled | None = None
        for position, (spooled, delivery) in enumerate(sends):
            try:
                await delivery.receipt(self._kafka.ack_timeout)
            except HookbusError as exc:
                if not exc.retriable:
                    self._give_up(spooled, exc)
                    delivered = spooled
                    continue
                # Still on its way: wait for these sends next time instead of sending again.
                for waiting, unsettled in sends[position:]:
                    if not unsettled.future.done():
                        self._pending[waiting.record.ingest_id] = unsettled
                return delivered
            delivered = spooled
        return delivered

    def _give_up(self, spooled: Spooled, exc: HookbusError) -> None:
        # Kafka will never take this record (too large for the topic): keeping it in line would
        # block every later one, and dropping it would lose an accepted event. It is set aside.
        path = set_aside(self._undeliverable, spooled.record)
        self._log.error("spool_record_set_aside", ingest_id=spooled.record.ingest_id, reason=exc.reason, path=str(path))

    async def _report_depth(self) -> None:
        reported_empty = True
        while True:
            await asyncio.sleep(DEPTH_LOG_INTERVAL_SECONDS)
            depth = self.depth()
            if depth.records:
                self._log.info("spool_depth", records=depth.records, bytes=depth.bytes)
                reported_empty = False
            elif not reported_empty:
                self._log.info("spool_drained")
                reported_empty = True
