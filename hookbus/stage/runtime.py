"""The consume loop every Kafka stage runs on: fetch a batch, let the stage settle it, commit.

See :mod:`hookbus.stage` for the guarantees. A stage plugs in as a :class:`BatchHandler`:
:class:`~hookbus.stage.processor.ProcessorStage` (records in, records out) or
:class:`~hookbus.stage.output.OutputStage` (records written to a destination).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from hookbus.config import KafkaConfig, OpsConfig
from hookbus.errors import HookbusError, KafkaUnavailableError
from hookbus.kafka import (
    TopicSpec,
    ensure_topics,
    make_consumer,
    make_producer,
    require_safe_topics,
    wait_for_group_coordinator,
)
from hookbus.ops_server import (
    ACKS_FAILING,
    COMMIT_FAILING,
    FETCH_FAILING,
    NO_PARTITIONS_ASSIGNED,
    PROBE_TIMEOUT_SECONDS,
    STARTING,
    ClusterProbe,
    serving_ops,
)
from hookbus.stage.backoff import Backoff, is_transient
from hookbus.stage.containment import REASON_INTERNAL_ERROR, contained
from hookbus.stage.deadletter import REASON_PUBLISH_FAILED, STAGE_PUBLISH, Failure, Origin, dead_letter_headers
from hookbus.stage.metrics import BATCH_SECONDS, CONSUMER_LAG, LAG_REFRESH_SECONDS
from hookbus.stage.publisher import Publishable, Publisher
from hookbus.stage.record import ConsumedRecord, KafkaHeaders

__all__ = ["BatchHandler", "Outgoing", "StageRuntime", "StageSettings"]

Logger = structlog.stdlib.BoundLogger
PreparedT = TypeVar("PreparedT")
ResultT = TypeVar("ResultT")
# Longest a wait for a retry goes without looking at the stop signal.
_TICK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class StageSettings:
    """What the runtime needs to know of a stage: where it reads, how it batches and retries."""

    topic: str
    """The topic consumed."""
    group_id: str
    dead_letter_topic: str
    topics: Sequence[TopicSpec]
    """Created at start if missing, then checked (:func:`~hookbus.kafka.require_safe_topics`):
    the topic consumed, the dead-letter topic, any output topic."""
    batch_size: int
    batch_timeout_seconds: float
    """Longest wait for a batch to fill after its first record; 0 takes what one fetch returns."""
    retry_initial_seconds: float
    retry_max_seconds: float
    fetch_wait_seconds: float = _TICK_SECONDS
    """Longest one fetch waits for a first record; the stop signal is looked at in between."""
    max_attempts: int = 3
    """Tries a record gets when handling it fails on its own - the stage's work on it raises, a
    sink's write raises for it alone, Kafka refuses its output - before it is dead-lettered
    instead. An outage of Kafka or of a destination is retried without this bound."""
    dead_letter_extra: Mapping[str, str] = field(default_factory=dict)
    """More ``hookbus-dlq-<name>`` headers for this stage's dead letters, e.g. ``sink``."""
    keep_trying_to_start: bool = False
    """Retry what fails at start until stopped (a sink started before its destination), instead of
    raising :class:`~hookbus.errors.KafkaUnavailableError` so the process exits and is restarted."""
    ops: OpsConfig = field(default_factory=OpsConfig)
    """Where the stage serves ``/healthz`` and ``/readyz`` while it runs (port 0: nowhere)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish and the consumed record it stands for."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders
    source: ConsumedRecord
    label: str
    """What it counts as: the kind of output (an event type), or the dead letter's reason."""
    dead_letter: bool = False


class BatchHandler(Protocol[PreparedT]):
    """A stage as the runtime drives it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def not_ready_reasons(self) -> Sequence[str]:
        """What keeps the stage's own work from succeeding now (its destination); empty when nothing."""
        ...

    def prepare(self, records: Sequence[ConsumedRecord], runtime: StageRuntime[PreparedT]) -> PreparedT:
        """Decode or map a batch just read (while the one before is still being settled); the
        work on each record goes through :meth:`StageRuntime.contained`."""
        ...

    async def settle(self, batch: PreparedT, runtime: StageRuntime[PreparedT]) -> bool:
        """Publish or write everything of ``batch``, dead letters included; ``False`` if it was
        abandoned (stopping, or the partitions are being given up, while it waited to retry)."""
        ...


@dataclass(frozen=True, slots=True)
class _Batch(Generic[PreparedT]):
    records: Sequence[ConsumedRecord]
    prepared: PreparedT
    generation: int
    """The assignment the records were fetched under."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self, revoked: Callable[[set[TopicPartition]], Awaitable[None]], assigned: Callable[[set[TopicPartition]], None]
    ) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._assigned(assigned)


class StageRuntime(Generic[PreparedT]):
    """One stage instance in its consumer group: owns the consumer and the producer."""

    def __init__(
        self,
        kafka: KafkaConfig,
        settings: StageSettings,
        handler: BatchHandler[PreparedT],
        *,
        max_record_bytes: int,
        log: Logger,
        stop: asyncio.Event,
    ) -> None:
        self._kafka = kafka
        self.settings = settings
        self._handler = handler
        self.log = log
        self._stop = stop
        self._consumer: Any = make_consumer(kafka, group_id=settings.group_id, max_record_size=max_record_bytes)
        self._consumer.subscribe([settings.topic], listener=_Rebalance(self._partitions_revoked, self._assigned))
        self._publisher = Publisher(functools.partial(make_producer, kafka, max_request_size=max_record_bytes), log)
        self._batch_lock = asyncio.Lock()
        self._committing: asyncio.Task[None] | None = None
        self._generation = 0
        self._revoking = asyncio.Event()
        self._started = False
        self._fetch_failing = False
        self._commit_failing = False
        # The next offset of each assigned partition as last committed (by this member, or found
        # in the group), for the consumer lag.
        self._committed_offsets: dict[TopicPartition, int] = {}
        self._batch_seconds = BATCH_SECONDS.labels(settings.group_id)
        # The consumer's own client: what it reaches is what the stage reaches. aiokafka names
        # no public accessor for it.
        self._cluster = ClusterProbe(self._consumer._client, [settings.topic])

    def backoff(self) -> Backoff:
        return Backoff(self.settings.retry_initial_seconds, self.settings.retry_max_seconds)

    # --- lifecycle ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def started(self) -> AsyncIterator[bool]:
        """Create and check the topics, open the stage, start the clients; ``False`` if stopped first.
        Everything is closed on leaving. Stopping commits nothing: what was not committed
        after it was settled is read again."""
        async with serving_ops(self.settings.ops, self):
            try:
                self._started = await self._start()
                yield self._started
            finally:
                self._started = False
                await self._shut_down()

    async def not_ready_reasons(self) -> list[str]:
        """What keeps the stage from consuming or producing now (:mod:`hookbus.ops_server`)."""
        if not self._started:
            return [STARTING]
        reasons = list(await self._cluster.not_ready_reasons())
        if not self._consumer.assignment():
            reasons.append(NO_PARTITIONS_ASSIGNED)
        for failing, reason in (
            (self._fetch_failing, FETCH_FAILING),
            (self._commit_failing, COMMIT_FAILING),
            (self._publisher.failing, ACKS_FAILING),
        ):
            if failing:
                reasons.append(reason)
        reasons.extend(await self._handler.not_ready_reasons())
        return reasons

    async def _start(self) -> bool:
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("create_topics", lambda: ensure_topics(self._kafka, self.settings.topics)),
            ("check_topics", lambda: require_safe_topics(self._kafka, self.settings.topics, self.log)),
            ("open_stage", self._handler.open),
            ("start_producer", self._publisher.start),
            ("find_group_coordinator", self._wait_for_group_coordinator),
            ("start_consumer", self._consumer.start),
        ]
        for step, action in steps:
            if not await self._until_done(step, action):
                return False
        return True

    async def _wait_for_group_coordinator(self) -> None:
        found = await wait_for_group_coordinator(self._kafka, self.settings.group_id, stop=self._stop)
        if not found and not self._stop.is_set():
            # The consumer is started anyway: it keeps looking, and says why it cannot find it.
            self.log.warning("group_coordinator_not_ready", group_id=self.settings.group_id)

    async def _until_done(self, step: str, action: Callable[[], Awaitable[None]]) -> bool:
        """Run ``action``; retried after a retriable failure when the stage keeps trying to start."""
        backoff = self.backoff()
        while not self._stop.is_set():
            try:
                await action()
            except (HookbusError, KafkaError, OSError) as exc:
                if isinstance(exc, HookbusError) and not exc.retriable:
                    raise
                if not self.settings.keep_trying_to_start:
                    if isinstance(exc, HookbusError):
                        raise
                    raise KafkaUnavailableError(f"cannot connect to {self._kafka.bootstrap_servers}: {exc!r}") from exc
                delay = backoff.next_delay()
                self.log.warning("start_step_failed", step=step, error=repr(exc), retry_in=round(delay, 3))
                if await self._interrupted_within(delay):
                    return False
            else:
                return True
        return False

    async def _shut_down(self) -> None:
        for what, close in (
            ("consumer", self._consumer.stop),
            ("producer", self._publisher.stop),
            ("stage", self._handler.close),
        ):
            try:
                await close()
            except Exception as exc:  # closing the others matters more
                self.log.warning("close_failed", what=what, error=repr(exc))

    # --- batches --------------------------------------------------------------------------

    async def consume(self) -> None:
        """Handle batch after batch, in order, until stopped.

        The next batch is read and prepared while one is settled, and a batch's offsets are
        committed while the next one is settled: settling mostly waits on Kafka or a
        destination, so doing all this one step after the other left the process idle half
        the time. A batch is still committed only after it is settled, commits go in order,
        and only one batch is settled at a time.
        """
        reading = asyncio.create_task(self._read())
        measuring = asyncio.create_task(self._measure_lag_forever(), name="consumer-lag")
        try:
            while not self._stop.is_set():
                batch = await reading
                reading = asyncio.create_task(self._read())
                if batch.records:
                    await self._handle(batch)
        finally:
            measuring.cancel()
            await self._committed()
            # Records read ahead are not committed: the next run reads them again.
            reading.cancel()
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()  # an error reading ahead is moot once the loop has ended

    async def _read(self) -> _Batch[PreparedT]:
        records, generation = await self._collect()
        return _Batch(records, self._handler.prepare(records, self), generation)

    async def _collect(self) -> tuple[list[ConsumedRecord], int]:
        """Up to ``batch_size`` records, waiting at most ``batch_timeout_seconds`` after the first,
        and the assignment they were fetched under."""
        settings = self.settings
        records: list[ConsumedRecord] = []
        generation = self._generation
        deadline: float | None = None
        backoff = self.backoff()
        while len(records) < settings.batch_size and not self._stop.is_set():
            longest = settings.fetch_wait_seconds
            wait = longest if deadline is None else max(0.0, min(longest, deadline - time.monotonic()))
            try:
                fetched = await self._consumer.getmany(
                    timeout_ms=int(wait * 1000), max_records=settings.batch_size - len(records)
                )
            except KafkaError as exc:
                if not is_transient(exc):
                    raise
                self._fetch_failing = True
                self.log.warning("fetch_retry", error=type(exc).__name__)
                # Only a stop cuts this wait short: a rebalance does not make the broker answer sooner.
                await self._interrupted_within(backoff.next_delay(), by_rebalance=False)
                continue
            self._fetch_failing = False
            if generation != self._generation:
                # A rebalance meanwhile: every partition starts again from its last commit,
                # under whichever member owns it now, so what was read before is read again.
                records, generation, deadline = [], self._generation, None
            for partition_records in fetched.values():
                records.extend(partition_records)
            if records and deadline is None:
                deadline = time.monotonic() + settings.batch_timeout_seconds
            if deadline is not None and time.monotonic() >= deadline:
                break
        # Stopping now leaves the batch uncommitted: the next run reads it again.
        return ([] if self._stop.is_set() else records), generation

    async def _handle(self, batch: _Batch[PreparedT]) -> None:
        async with self._batch_lock:
            if batch.generation != self._generation:
                # Fetched before a rebalance: read again from the last commit, by its owner now.
                self.log.info("batch_dropped_after_rebalance", records=len(batch.records))
                return
            started = time.monotonic()
            try:
                settled = await self._handler.settle(batch.prepared, self)
            finally:
                self._batch_seconds.observe(time.monotonic() - started)
                # A retry pauses fetching until the batch is settled, not just between its
                # attempts: resumed for each attempt, the consumer fetched the growing backlog
                # again every time.
                self._consumer.resume(*self._consumer.assignment())
            if not settled:
                self.log.warning("batch_abandoned", records=len(batch.records))
                return
            await self._committed()
            self._committing = asyncio.create_task(self._commit(batch.records))

    # --- what a stage uses while preparing and settling a batch ----------------------------

    def contained(
        self, work: Callable[[], ResultT], record: ConsumedRecord, *, stage: str, reason: str = REASON_INTERNAL_ERROR
    ) -> ResultT | Failure:
        """``work()`` on ``record``; when it keeps raising, after ``max_attempts`` tries, the
        failure that dead-letters the record instead of stopping the stage
        (:func:`~hookbus.stage.containment.contained`)."""
        return contained(
            work,
            attempts=self.settings.max_attempts,
            stage=stage,
            reason=reason,
            log=self.log,
            partition=record.partition,
            offset=record.offset,
        )

    def dead_letter(self, record: ConsumedRecord, failure: Failure) -> Outgoing:
        """``record`` as read, for the dead-letter topic, with why in its ``hookbus-dlq-*`` headers."""
        self.log.warning(
            "dead_lettered",
            stage=failure.stage,
            reason=failure.reason,
            detail=failure.detail,
            partition=record.partition,
            offset=record.offset,
        )
        origin = Origin(record.topic, record.partition, record.offset)
        headers = dead_letter_headers(record.headers, failure, origin, extra=self.settings.dead_letter_extra)
        return Outgoing(
            self.settings.dead_letter_topic, record.key, record.value, headers, record, failure.reason, True
        )

    async def publish(self, outgoing: MutableSequence[Outgoing]) -> bool:
        """Publish ``outgoing`` in order until every record is acknowledged, fetching paused
        while it waits to retry; ``False`` if abandoned meanwhile. An output Kafka refuses
        ``max_attempts`` times on its own is replaced, in ``outgoing``, by its record's dead letter."""
        return await self._publisher.publish(
            outgoing,
            backoff=self.backoff(),
            wait=self.wait_paused,
            max_refusals=self.settings.max_attempts,
            refused_for_good=self._dead_letter_instead,
        )

    async def publish_best_effort(self, records: Sequence[Publishable]) -> int:
        """Send ``records`` once each and wait for their acknowledgements; how many were not
        acknowledged. For what the stage reports about its work (delivery reports), which must
        never hold the work up: nothing is retried, nothing paused."""
        errors = await self._publisher.send_each(records)
        return sum(error is not None for error in errors)

    def _dead_letter_instead(self, item: Outgoing, error: BaseException) -> Outgoing | None:
        if item.dead_letter:
            return None
        return self.dead_letter(item.source, Failure.unexpected(STAGE_PUBLISH, REASON_PUBLISH_FAILED, error))

    async def wait_paused(self, seconds: float) -> bool:
        """Wait ``seconds`` with fetching paused; ``False`` if told to stop, or to give the
        partitions up, first (the batch is then abandoned, and read again from the last commit).

        Fetching stays paused after it, until the batch is settled. The consumer is still
        polled now and then, or the group would take it for dead.
        """
        consumer = self._consumer
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            consumer.pause(*consumer.assignment())
            # A partition assigned by a rebalance meanwhile is not paused yet: put back what it fetched.
            for partition, strays in (await consumer.getmany(timeout_ms=0)).items():
                if strays:
                    consumer.seek(partition, strays[0].offset)
            if await self._interrupted_within(min(remaining, _TICK_SECONDS)):
                return False
        return not self._interrupted()

    def _interrupted(self, *, by_rebalance: bool = True) -> bool:
        return self._stop.is_set() or (by_rebalance and self._revoking.is_set())

    async def _interrupted_within(self, seconds: float, *, by_rebalance: bool = True) -> bool:
        """Sleep up to ``seconds``; ``True`` (at once) when told to stop, or (``by_rebalance``) to
        give the partitions up."""
        if self._interrupted(by_rebalance=by_rebalance):
            return True
        events = (self._stop, self._revoking) if by_rebalance else (self._stop,)
        waits = [asyncio.create_task(event.wait()) for event in events]
        _, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiting in pending:
            waiting.cancel()
        return self._interrupted(by_rebalance=by_rebalance)

    # --- commits and rebalances ---------------------------------------------------------------

    async def _committed(self) -> None:
        """Wait for the commit under way, if any."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def _commit(self, records: Sequence[ConsumedRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        backoff = self.backoff()
        while True:
            try:
                await self._consumer.commit(offsets)
                self._commit_failing = False
                self._committed_offsets.update(offsets)
                return
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on: the partitions' new owner reads from the last commit and
                # handles this batch again, with the same event ids.
                self.log.warning("commit_lost_to_rebalance", error=type(exc).__name__)
                return
            except KafkaError as exc:
                if not is_transient(exc):
                    raise
                self._commit_failing = True
                self.log.warning("commit_retry", error=type(exc).__name__)
                if await self._interrupted_within(backoff.next_delay()):
                    return

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Hold the rebalance until the batch in flight is settled and committed. A batch
        waiting to retry is abandoned instead, so an outage does not hold up the whole group."""
        self._generation += 1
        self._revoking.set()
        try:
            async with self._batch_lock:
                await self._committed()
        finally:
            self._revoking.clear()
        for partition in revoked:
            # Its new owner reports its lag now; a stale value here would be summed with it.
            self._committed_offsets.pop(partition, None)
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(self.settings.group_id, partition.topic, str(partition.partition))
        if revoked:  # a consumer's first join revokes nothing: no line for it
            self.log.info("partitions_revoked", partitions=sorted(tp.partition for tp in revoked))

    # --- consumer lag ---------------------------------------------------------------------------

    async def _measure_lag_forever(self) -> None:
        """The lag of every assigned partition, every few seconds; a failed measure waits for the next
        (the probes and the retries of fetching already say that Kafka is away)."""
        while True:
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                    await self._measure_lag()
            except (TimeoutError, KafkaError, OSError) as exc:
                self.log.debug("lag_not_measured", error=type(exc).__name__)
            await asyncio.sleep(LAG_REFRESH_SECONDS)

    async def _measure_lag(self) -> None:
        assigned = set(self._consumer.assignment())
        if not assigned:
            return
        ends = await self._consumer.end_offsets(list(assigned))
        for partition in assigned:
            done = self._committed_offsets.get(partition)
            if done is None:
                # Nothing committed by this member yet: the group's commit, else where it starts reading.
                done = await self._consumer.committed(partition)
                if done is None:
                    done = (await self._consumer.beginning_offsets([partition]))[partition]
                if partition not in self._consumer.assignment():
                    continue  # revoked while asking
                self._committed_offsets.setdefault(partition, done)
            lag = max(0, ends[partition] - done)
            CONSUMER_LAG.labels(self.settings.group_id, partition.topic, str(partition.partition)).set(lag)

    def _assigned(self, assigned: set[TopicPartition]) -> None:
        self._generation += 1
        self.log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
