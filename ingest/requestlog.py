"""Writing the request log (:mod:`hookbus.requestlog`) from a gateway process.

Entries go out after the answer, from a bounded queue, through a producer of their own: the
log never delays an answer, never competes with the raw records for a producer's buffer,
and a Kafka outage costs it the oldest entries once the queue is full (counted and logged),
never a webhook. Each process keeps refused bodies within its own byte budget per second.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hookbus.config import HookbusConfig, RequestLogConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import ensure_topics, make_producer, request_log_topic
from hookbus.logging import get_logger
from hookbus.requestlog import RequestLogEntry
from hookbus.stage.backoff import Backoff

__all__ = ["RefusedBodyBudget", "RequestLogWriter"]

RETRY_INITIAL_SECONDS = 0.5
RETRY_MAX_SECONDS = 10.0
# Entries of a batch before the writer yields to the event loop (answers come first).
SEND_BATCH = 256


class RefusedBodyBudget:
    """A token bucket of body bytes per second: how much of refused requests' bodies is kept."""

    def __init__(self, settings: RequestLogConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._prefix_bytes = settings.refused_body_bytes
        self._rate = float(settings.refused_body_bytes_per_second)
        self._tokens = self._rate
        self._clock = clock
        self._last = clock()

    def prefix(self, body: bytes) -> bytes | None:
        """The prefix of ``body`` to keep, or ``None`` when the budget has no room for it now."""
        wanted = body[: self._prefix_bytes]
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if not wanted or len(wanted) > self._tokens:
            return None
        self._tokens -= len(wanted)
        return wanted


class RequestLogWriter:
    """Sends entries to the request-log topic in the background."""

    def __init__(self, config: HookbusConfig, *, new_producer: Callable[[], AIOKafkaProducer] | None = None) -> None:
        self._config = config
        self._topic = config.kafka.requests_topic
        self._new_producer = new_producer or (lambda: make_producer(config.kafka))
        self._queue: collections.deque[RequestLogEntry] = collections.deque()
        self._capacity = config.request_log.queue_entries
        self._pending = asyncio.Event()
        self._sent_all = asyncio.Event()
        self._sent_all.set()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None
        self.dropped = 0
        """Entries lost: dropped from a full queue, or refused by Kafka."""
        self._log = get_logger(service="gateway")

    def record(self, entry: RequestLogEntry) -> None:
        """Queue ``entry``; with the queue full, the oldest entry is dropped for it."""
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(entry)
        self._sent_all.clear()
        self._pending.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="request-log")

    async def stop(self, timeout: float) -> None:
        """Send what is queued, for up to ``timeout`` seconds, then close the producer."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                # Also while the producer is still connecting: what was queued goes out once it is.
                await self._sent_all.wait()
                if self._producer is not None:
                    await self._producer.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(self._producer.stop(), timeout=max(0.1, timeout))
        self.dropped += len(self._queue)
        if self.dropped:
            self._log.warning("request_log_entries_dropped", entries=self.dropped)

    async def _run(self) -> None:
        backoff = Backoff(RETRY_INITIAL_SECONDS, RETRY_MAX_SECONDS)
        while True:
            # One backoff per outage: a new one starts from the shortest delay again.
            await self._pending.wait()
            self._pending.clear()
            try:
                producer = await self._connected()
                await self._send_queued(producer)
            except (KafkaError, KafkaUnavailableError) as exc:
                self._log.warning("request_log_unavailable", error=type(exc).__name__)
                await self._close_producer()
                await asyncio.sleep(backoff.next_delay())
                self._pending.set()
                continue
            backoff = Backoff(RETRY_INITIAL_SECONDS, RETRY_MAX_SECONDS)

    async def _connected(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self._config.kafka, [request_log_topic(self._config)])
            producer = self._new_producer()
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(KafkaError):
                    await producer.stop()
                raise KafkaUnavailableError(f"cannot start the request log's producer: {exc!r}") from exc
            self._producer = producer
        return self._producer

    async def _send_queued(self, producer: AIOKafkaProducer) -> None:
        sent = 0
        while self._queue:
            entry = self._queue[0]
            delivery = await producer.send(self._topic, entry.to_json(), key=entry.source.encode())
            self._queue.popleft()
            delivery.add_done_callback(self._count_failure)
            sent += 1
            if sent % SEND_BATCH == 0:
                await asyncio.sleep(0)
        self._sent_all.set()

    def _count_failure(self, delivery: asyncio.Future[object]) -> None:
        if not delivery.cancelled() and delivery.exception() is not None:
            self.dropped += 1

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                await asyncio.wait_for(producer.stop(), timeout=RETRY_MAX_SECONDS)
