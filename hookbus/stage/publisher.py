"""Publishing records in order, and recovering from the records Kafka refuses.

Records are sent in order and every acknowledgement is awaited; the producer is
idempotent, which keeps order across its internal retries. A send that fails is retried
together with everything sent after it, so the last copy of each record is always in
order.

Kafka refuses a whole producer batch for one bad record (too large, say), and after a
refusal the idempotent producer's sequence numbers for that partition no longer match the
broker's: every later send would fail with ``OutOfOrderSequenceNumber``. So after a
refusal the producer is replaced by a new one, which starts a new sequence, and the
remaining records are sent one at a time, each acknowledged before the next: only a record
Kafka refuses on its own is counted against.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, MutableSequence, Sequence
from typing import Any, Protocol, TypeVar

import structlog
from aiokafka import AIOKafkaProducer

from hookbus.stage.backoff import Backoff, is_transient
from hookbus.stage.record import KafkaHeaders

__all__ = ["Publishable", "Publisher"]

Logger = structlog.stdlib.BoundLogger


class Publishable(Protocol):
    """A record to publish."""

    @property
    def topic(self) -> str: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> KafkaHeaders: ...


RecordT = TypeVar("RecordT", bound=Publishable)


class Publisher:
    """An idempotent producer that is replaced after Kafka refuses a record."""

    def __init__(self, new_producer: Callable[[], AIOKafkaProducer], log: Logger) -> None:
        self._new_producer = new_producer
        self._producer = new_producer()
        self._log = log
        self.failing = False
        """Whether the last try of a publish left records unacknowledged (for readiness)."""

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        """Stop the producer, once what it holds is delivered."""
        await self._producer.stop()

    async def _restart(self) -> None:
        """A new producer, with a new sequence: the one to use after a refusal."""
        await self._producer.stop()
        self._producer = self._new_producer()
        await self._producer.start()

    async def publish(
        self,
        records: MutableSequence[RecordT],
        *,
        backoff: Backoff,
        wait: Callable[[float], Awaitable[bool]],
        max_refusals: int,
        refused_for_good: Callable[[RecordT, BaseException], RecordT | None],
    ) -> bool:
        """Publish ``records`` in order and wait for every acknowledgement, retrying until they
        are all acknowledged; ``False`` if ``wait`` (between tries) says to give up.

        A record Kafka refuses on its own ``max_refusals`` times is replaced, in ``records``,
        by what ``refused_for_good`` returns (a dead letter), or retried on when that is
        ``None`` (a dead letter itself is never given up on: that would lose the record).
        """
        refusals: Counter[int] = Counter()
        start = 0
        one_by_one = False
        while True:
            if one_by_one:
                failed = await self._send_one_by_one(records, start)
            else:
                errors = await self._send_together(records[start:])
                failed = [(start + index, error) for index, error in enumerate(errors) if error is not None]
            self.failing = bool(failed)
            if not failed:
                return True
            # Everything from the first failure on is sent again, so the last copy of each
            # record is in order even when a later send succeeded.
            start = failed[0][0]
            refused = [(index, error) for index, error in failed if not is_transient(error)]
            if refused:
                await self._restart()
                if one_by_one:
                    index, error = refused[0]
                    refusals[index] += 1
                    self._log.error("publish_refused", topic=records[index].topic, error=type(error).__name__)
                    replacement = refused_for_good(records[index], error) if refusals[index] >= max_refusals else None
                    if replacement is not None:
                        records[index] = replacement
                # From here on each record is sent alone, so only the bad one is counted against.
                one_by_one = True
            self._log.warning("publish_retry", failed=len(failed), resending=len(records) - start)
            if not await wait(backoff.next_delay()):
                return False

    async def send_each(self, records: Sequence[Publishable]) -> list[BaseException | None]:
        """Send ``records`` and wait for their acknowledgements; the error of each, its own.

        After a refusal the producer is replaced and the records from the first failure on
        are sent one at a time, so a record that was only refused with a bad one is not.
        """
        errors = await self._send_together(records)
        if not any(error is not None and not is_transient(error) for error in errors):
            return errors
        await self._restart()
        first_failed = next(index for index, error in enumerate(errors) if error is not None)
        for index in range(first_failed, len(records)):
            [error] = await self._send_together(records[index : index + 1])
            errors[index] = error
            if error is not None and not is_transient(error):
                await self._restart()
        return errors

    async def _send_one_by_one(self, records: Sequence[Publishable], start: int) -> list[tuple[int, BaseException]]:
        """Send from ``start``, each record acknowledged before the next; stops at the first failure."""
        for index in range(start, len(records)):
            [error] = await self._send_together(records[index : index + 1])
            if error is not None:
                return [(index, error)]
        return []

    async def _send_together(self, records: Sequence[Publishable]) -> list[BaseException | None]:
        """Send ``records`` in order, then wait for all their acknowledgements; the error of each, if any."""
        loop = asyncio.get_running_loop()
        acknowledgements: list[asyncio.Future[Any]] = []
        for record in records:
            try:
                acknowledgement = await self._producer.send(
                    record.topic, record.value, key=record.key, headers=list(record.headers)
                )
            except Exception as exc:
                # Refused before it left (too large, no metadata in time): a failed
                # acknowledgement, so it is retried in its place.
                acknowledgement = loop.create_future()
                acknowledgement.set_exception(exc)
            acknowledgements.append(acknowledgement)
        results = await asyncio.gather(*acknowledgements, return_exceptions=True)
        return [result if isinstance(result, BaseException) else None for result in results]
