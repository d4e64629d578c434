"""Helpers for sinks that store events in a table: the canonical columns, and a bulk write
that falls back to single rows to find the events the database refuses.

The built-in PostgreSQL and SQLite sinks use them; a third-party table sink (another SQL
database) needs the same columns and the same fallback, so they live beside the contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from hookbus.cloudevent import CloudEvent
from hookbus.errors import ConfigError
from hookbus.settings import as_str
from hookbus.sink import BatchResult, EventRejectedError, Rejection, SinkUnavailableError

__all__ = ["PROVIDER_EXTENSION", "RECEIVED_TIME_EXTENSION", "EventRow", "as_identifier", "rows_of", "write_rows"]

# Extensions the normalizer sets on every canonical event; table sinks give them columns.
PROVIDER_EXTENSION = "provider"
RECEIVED_TIME_EXTENSION = "receivedtime"


@dataclass(frozen=True, slots=True)
class EventRow:
    """The canonical columns every table sink stores, one row per event id."""

    id: str
    type: str
    source: str
    subject: str | None
    time: datetime | None
    received_at: datetime | None
    provider: str | None
    partition_key: str | None
    data: str
    """JSON text."""
    event: str
    """The whole event (attributes, extensions and data) as JSON text."""

    @classmethod
    def of(cls, event: CloudEvent) -> EventRow:
        """The row of ``event``; :class:`EventRejectedError` if a time attribute is not RFC 3339."""
        provider = event.extensions.get(PROVIDER_EXTENSION)
        received = event.extensions.get(RECEIVED_TIME_EXTENSION)
        return cls(
            id=event.id,
            type=event.type,
            source=event.source,
            subject=event.subject,
            time=_timestamp(event.time, "time"),
            received_at=_timestamp(str(received) if received is not None else None, RECEIVED_TIME_EXTENSION),
            provider=str(provider) if provider is not None else None,
            partition_key=event.partition_key,
            data=event.data_bytes().decode("utf-8"),
            event=event.to_json().decode("utf-8"),
        )


def _timestamp(text: str | None, attribute: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EventRejectedError(f"{attribute} is not an RFC 3339 timestamp", reason="invalid_time") from exc
    if moment.tzinfo is None:
        raise EventRejectedError(f"{attribute} has no UTC offset", reason="invalid_time")
    return moment.astimezone(UTC)


def rows_of(batch: Iterable[CloudEvent]) -> tuple[list[tuple[CloudEvent, EventRow]], list[Rejection]]:
    """The rows of a batch, and the events whose attributes cannot be stored."""
    rows: list[tuple[CloudEvent, EventRow]] = []
    rejected: list[Rejection] = []
    for event in batch:
        try:
            rows.append((event, EventRow.of(event)))
        except EventRejectedError as exc:
            rejected.append(Rejection(event, exc.reason, exc.detail))
    return rows, rejected


async def write_rows(
    batch: Sequence[CloudEvent],
    write_bulk: Callable[[Sequence[EventRow]], Awaitable[None]],
    write_row: Callable[[EventRow], Awaitable[None]],
    log: structlog.stdlib.BoundLogger,
) -> BatchResult:
    """Write a batch into a table: in bulk, or row by row when the bulk write is refused.

    Both callables raise :class:`EventRejectedError` when the database refuses the data and
    :class:`SinkUnavailableError` when it cannot be reached. Only a refused bulk write falls
    back to single rows, to find the events to dead-letter; an unreachable database retries
    the event it failed on and every one after it.
    """
    rows, rejected = rows_of(batch)
    try:
        await write_bulk([row for _, row in rows])
    except EventRejectedError as exc:
        log.warning("sink_bulk_write_refused", reason=exc.reason, events=len(rows))
    else:
        return BatchResult(written=[event for event, _ in rows], rejected=rejected)
    written: list[CloudEvent] = []
    for index, (event, row) in enumerate(rows):
        try:
            await write_row(row)
        except EventRejectedError as exc:
            rejected.append(Rejection(event, exc.reason, exc.detail))
        except SinkUnavailableError:
            return BatchResult(written=written, retry=[event for event, _ in rows[index:]], rejected=rejected)
        else:
            written.append(event)
    return BatchResult(written=written, rejected=rejected)


def as_identifier(value: Any, key: str) -> str:
    """A plain SQL identifier (table names are put into statements, so nothing else is allowed)."""
    text = as_str(value, key)
    if not text.isascii() or not text.replace("_", "a").isalnum() or text[0].isdigit() or len(text) > 63:
        raise ConfigError("must be letters, digits and '_' (at most 63, not starting with a digit)", key=key)
    return text.lower()
