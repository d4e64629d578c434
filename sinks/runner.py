"""``hookbus sink <name>``: feed one sink instance from the events topic, at least once.

The instance is its own consumer group. Records are read into batches (by size and time),
decoded into CloudEvents and filtered; the batch is written (while the next one is read), and
only once every event in it is written or dead-lettered are the offsets committed. What the sink asks to retry is
retried with capped exponential backoff and jitter, with fetching paused meanwhile, so a
destination that is down neither spins nor fills memory. Records that are not CloudEvents
and events the destination refuses for good go to the sink's dead-letter topic, as they
were read, with the reason in ``hookbus-dlq-*`` headers. On SIGTERM a batch being written
is finished, a batch waiting for a retry is abandoned uncommitted, and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from hookbus.cloudevent import CloudEvent, CloudEventError
from hookbus.config import HookbusConfig, load_config
from hookbus.kafka import TopicSpec, ensure_topics, hookbus_topics, make_consumer, make_producer, max_record_bytes
from hookbus.logging import configure_logging, get_logger
from hookbus.rawevent import format_time
from sinks.api import BatchResult, ConfiguredSink, ConsumedRecord, Rejection, Sink, SinkContext, configure_sink
from sinks.errors import SinkError

DLQ_HEADER_PREFIX = "hookbus-dlq-"
# Longest a wait for records or for a retry goes without looking at the stop signal.
_TICK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record kept whole for the dead-letter topic, with why: the same ``hookbus-dlq-*``
    headers as the normalizer's dead letters, plus ``hookbus-dlq-sink``."""

    record: ConsumedRecord
    stage: str
    """``read`` (not a CloudEvent) or ``write`` (refused by the destination)."""
    reason: str
    detail: str

    def headers(self, sink: str) -> list[tuple[str, bytes]]:
        """The record's own headers, then why and from where it was dead-lettered."""
        record = self.record
        added = {
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "sink": sink,
            "topic": record.topic,
            "partition": str(record.partition),
            "offset": str(record.offset),
            "time": format_time(time.time()),
        }
        return [*(record.headers or ()), *((DLQ_HEADER_PREFIX + name, text.encode()) for name, text in added.items())]


@dataclass(frozen=True, slots=True)
class _Batch:
    """Records read together, decoded: the events to write and what is dead already."""

    records: Sequence[Any]
    events: list[CloudEvent]
    record_by_event: dict[int, ConsumedRecord]
    """The record of each event, by the event's ``id()``."""
    dead: list[DeadLetter]
    skipped: int


class Backoff:
    """Capped exponential delays with jitter: ``initial * 2**n`` up to ``cap``, each drawn from its upper half."""

    def __init__(self, initial: float, cap: float) -> None:
        self._initial = max(initial, 0.001)
        self._cap = max(cap, self._initial)
        self._attempt = 0

    def next(self, at_least: float | None = None) -> float:
        ceiling = min(self._cap, self._initial * 2.0**self._attempt)
        self._attempt += 1
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
        return max(delay, at_least or 0.0)


class SinkRunner:
    """One sink instance fed by its consumer group. Built by :func:`run_sink`."""

    def __init__(self, config: HookbusConfig, configured: ConfiguredSink, stop: asyncio.Event) -> None:
        self._config = config
        self._configured = configured
        self._settings = configured.runner
        self._stop = stop
        self._log = get_logger(service="sink", sink=configured.name, sink_type=configured.runner.type)
        self._records: dict[int, ConsumedRecord] = {}
        self._committing: asyncio.Task[None] | None = None
        context = SinkContext(name=configured.name, config=config, log=self._log, record_of=self._record_of)
        self._sink: Sink = configured.create(context)
        record_size = max_record_bytes(config)
        self._consumer: Any = make_consumer(
            config.kafka, config.kafka.events_topic, group_id=configured.group_id, max_record_size=record_size
        )
        self._producer: Any = make_producer(config.kafka, max_request_size=record_size)

    def _record_of(self, event: CloudEvent) -> ConsumedRecord | None:
        return self._records.get(id(event))

    def _backoff(self) -> Backoff:
        return Backoff(self._settings.retry_initial_seconds, self._settings.retry_max_seconds)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self, ready: asyncio.Event | None = None) -> None:
        self._log.info(
            "sink_starting", group_id=self._configured.group_id, dead_letter_topic=self._configured.dead_letter_topic
        )
        try:
            if not await self._start():
                return
            if ready is not None:
                ready.set()
            self._log.info("sink_started")
            await self._consume()
        finally:
            await self._shut_down()
        self._log.info("sink_stopped")

    async def _start(self) -> bool:
        kafka = self._config.kafka
        events_spec = next(spec for spec in hookbus_topics(self._config) if spec.name == kafka.events_topic)
        dlq_spec = TopicSpec(
            self._configured.dead_letter_topic, kafka.topic_partitions, kafka.replication_factor, events_spec.configs
        )
        return (
            await self._until_done("create_topics", lambda: ensure_topics(kafka, [events_spec, dlq_spec]))
            and await self._until_done("open_sink", self._sink.open)
            and await self._until_done("start_producer", self._producer.start)
            and await self._until_done("start_consumer", self._consumer.start)
        )

    async def _shut_down(self) -> None:
        for what, close in (
            ("consumer", self._consumer.stop),
            ("producer", self._producer.stop),
            ("sink", self._sink.close),
        ):
            try:
                await close()
            except Exception as exc:  # closing the others matters more
                self._log.warning("sink_close_failed", what=what, error=repr(exc))

    async def _until_done(self, what: str, action: Callable[[], Awaitable[None]]) -> bool:
        """Run ``action`` until it succeeds, waiting between retriable failures; ``False`` if stopped first."""
        backoff = self._backoff()
        while not self._stop.is_set():
            try:
                await action()
            except (SinkError, KafkaError, OSError) as exc:
                if isinstance(exc, SinkError) and not exc.retriable:
                    raise
                delay = backoff.next()
                self._log.warning("sink_step_failed", step=what, error=repr(exc), retry_in=round(delay, 3))
                if await self._stopped_within(delay):
                    return False
            else:
                return True
        return False

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    # --- batches --------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Handle batch after batch, in order, until stopped.

        The next batch is read and decoded while one is written, and a batch's offsets are
        committed while the next one is written: the write mostly waits on the destination,
        so doing all this one step after the other left the process idle half the time. A
        batch is still committed only after its own write, commits go in order, and only one
        batch is written at a time.
        """
        reading = asyncio.create_task(self._read())
        try:
            while not self._stop.is_set():
                batch = await reading
                reading = asyncio.create_task(self._read())
                if batch.records:
                    await self._handle(batch)
        finally:
            await self._committed()
            # Records read ahead are not committed: the next run reads them again.
            reading.cancel()
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()  # an error reading ahead is moot once the loop has ended

    async def _collect(self) -> list[Any]:
        """Up to ``batch_size`` records, waiting at most ``batch_timeout_seconds`` after the first."""
        settings = self._settings
        batch: list[Any] = []
        deadline: float | None = None
        while len(batch) < settings.batch_size and not self._stop.is_set():
            wait = _TICK_SECONDS if deadline is None else max(0.0, min(_TICK_SECONDS, deadline - time.monotonic()))
            fetched = await self._consumer.getmany(
                timeout_ms=int(wait * 1000), max_records=settings.batch_size - len(batch)
            )
            for records in fetched.values():
                batch.extend(records)
            if batch and deadline is None:
                deadline = time.monotonic() + settings.batch_timeout_seconds
            if deadline is not None and time.monotonic() >= deadline:
                break
        # Stopping now leaves the batch uncommitted: the next run reads it again.
        return [] if self._stop.is_set() else batch

    async def _read(self) -> _Batch:
        records = await self._collect()
        dead: list[DeadLetter] = []
        events: list[CloudEvent] = []
        record_by_event: dict[int, ConsumedRecord] = {}
        skipped = 0
        for record in records:
            try:
                event = CloudEvent.from_kafka(record.headers, record.value)
            except CloudEventError as exc:
                dead.append(DeadLetter(record, "read", exc.reason, exc.detail))
                continue
            if self._settings.accepts(event):
                record_by_event[id(event)] = record
                events.append(event)
            else:
                skipped += 1
        return _Batch(records, events, record_by_event, dead, skipped)

    async def _handle(self, batch: _Batch) -> None:
        self._records = batch.record_by_event
        try:
            written = await self._write(batch.events, batch.dead)
            settled = written is not None and await self._dead_letter(batch.dead)
        finally:
            # A retry pauses fetching until the batch is settled, not just between its attempts:
            # resumed for each attempt, the consumer fetched the growing backlog again every time.
            self._consumer.resume(*self._consumer.assignment())
        if not settled:
            self._log.info("sink_batch_abandoned", records=len(batch.records))
            return
        await self._committed()
        self._committing = asyncio.create_task(self._commit(batch.records))
        self._log.info(
            "sink_batch_done",
            records=len(batch.records),
            written=written,
            dead_lettered=len(batch.dead),
            skipped=batch.skipped,
        )

    async def _write(self, events: list[CloudEvent], dead: list[DeadLetter]) -> int | None:
        """Write until nothing is left to retry; rejections are added to ``dead``. The count
        written, or ``None`` when stopped while waiting to retry."""
        backoff = self._backoff()
        pending = events
        written = 0
        while pending:
            result = await self._write_once(pending)
            written += len(result.written)
            for event, reason, detail in result.rejected:
                dead.append(DeadLetter(self._records[id(event)], "write", reason, detail))
            pending = list(result.retry)
            if pending:
                delay = backoff.next(result.retry_after)
                self._log.warning("sink_batch_retry", events=len(pending), retry_in=round(delay, 3))
                if await self._paused_until_stopped(delay):
                    return None
        return written

    async def _write_once(self, pending: list[CloudEvent]) -> BatchResult:
        try:
            result = await self._sink.write(pending)
        except SinkError as exc:
            self._log.warning("sink_write_failed", reason=exc.reason, retriable=exc.retriable, error=exc.detail)
            if exc.retriable:
                return BatchResult(retry=pending)
            return BatchResult(rejected=[Rejection(event, exc.reason, exc.detail) for event in pending])
        except Exception as exc:  # a sink's bug must not lose events: retry them
            self._log.error("sink_write_crashed", error=repr(exc), exc_info=True)
            return BatchResult(retry=pending)
        # Only the events handed over count; one the result does not account for is tried again.
        given = {id(event) for event in pending}
        written = [event for event in result.written if id(event) in given]
        rejected = [rejection for rejection in result.rejected if id(rejection.event) in given]
        retry = [event for event in result.retry if id(event) in given]
        accounted = {id(event) for event in (*written, *retry, *(rejection.event for rejection in rejected))}
        missing = [event for event in pending if id(event) not in accounted]
        if missing:
            self._log.warning("sink_result_incomplete", missing=len(missing))
        return BatchResult(written, [*retry, *missing], rejected, result.retry_after)

    async def _paused_until_stopped(self, seconds: float) -> bool:
        """Wait ``seconds`` with fetching paused; ``True`` if the stop signal came first.

        Fetching stays paused after it: :meth:`_handle` resumes it once the batch is settled.
        The consumer is still polled now and then, or the group would take it for dead.
        """
        consumer = self._consumer
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            consumer.pause(*consumer.assignment())
            # A partition assigned by a rebalance meanwhile is not paused yet: put back what it fetched.
            for partition, strays in (await consumer.getmany(timeout_ms=0)).items():
                if strays:
                    consumer.seek(partition, strays[0].offset)
            if await self._stopped_within(min(remaining, _TICK_SECONDS)):
                return True
        return False

    async def _dead_letter(self, letters: list[DeadLetter]) -> bool:
        """Publish ``letters`` to the dead-letter topic, retrying; ``False`` if stopped first."""
        backoff = self._backoff()
        topic = self._configured.dead_letter_topic
        while letters:
            sent = [(letter, await self._send_dead_letter(topic, letter)) for letter in letters]
            failed: list[DeadLetter] = []
            for letter, delivery in sent:
                try:
                    await delivery
                except KafkaError as exc:
                    self._log.warning("sink_dead_letter_failed", error=repr(exc))
                    failed.append(letter)
                else:
                    self._log.warning(
                        "sink_dead_lettered",
                        reason=letter.reason,
                        partition=letter.record.partition,
                        offset=letter.record.offset,
                    )
            letters = failed
            if letters and await self._paused_until_stopped(backoff.next()):
                return False
        return True

    async def _send_dead_letter(self, topic: str, letter: DeadLetter) -> Any:
        record = letter.record
        return await self._producer.send(
            topic, value=record.value, key=record.key, headers=letter.headers(self._configured.name)
        )

    async def _committed(self) -> None:
        """Wait for the commit under way, if any."""
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def _commit(self, records: Sequence[Any]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
        # A partition taken away by a rebalance is another member's now; it reads the batch again.
        assigned = self._consumer.assignment()
        owned = {partition: offset for partition, offset in offsets.items() if partition in assigned}
        try:
            if owned:
                await self._consumer.commit(owned)
        except KafkaError as exc:
            self._log.warning("sink_commit_failed", error=repr(exc))


async def run_sink(
    config: HookbusConfig, name: str, *, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Run the sink instance ``name`` until ``stop`` is set. ``ready`` is set once it consumes.

    :class:`~hookbus.errors.ConfigError` at once if its configuration section is wrong.
    """
    configured = configure_sink(config, name)
    await SinkRunner(config, configured, stop).run(ready)


def main(args: argparse.Namespace) -> int:
    """``hookbus sink <name>``: run until SIGTERM or SIGINT, then exit 0."""
    configure_logging(getattr(args, "log_level", "info"))
    config = load_config(args.config)
    configure_sink(config, args.name)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_sink(config, args.name, stop=stop)

    asyncio.run(serve())
    return 0
