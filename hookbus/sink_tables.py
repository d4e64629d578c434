"""Helpers for sinks that store events in a table: the canonical columns, and a bulk write
that falls back to single rows to find the events the database refuses.

The built-in PostgreSQL and SQLite sinks use them; a third-party table sink (another SQL
database) needs the same columns and the same fallback, so they live beside the contract.

Every table stores an event the same way, whatever its database accepts:

* **U+0000** (NUL), which PostgreSQL refuses in text and jsonb and SQLite takes, is stored
  by every table as the six characters ``\\u0000``, in the text columns and in every string
  (keys included) of the ``data`` and ``event`` JSON, so a NUL never makes an event a dead
  letter in one table and a row in another. The JSON still parses; what is lost is only the
  difference between a NUL and the text ``\\u0000`` itself (an event id differing only so
  would be the same row).
* **Times** are UTC instants; a database without a time type stores them as
  :func:`sortable_time` text, ``2026-01-01T00:00:00.000000Z``: fixed width, microseconds, ``Z``,
  so text order is time order and the events' own ``Z`` form compares as expected.
* **The Kafka position** (partition and offset of the record the event was read from) is
  the first record written for that id: a redelivered or replayed copy writes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from hookbus.cloudevent import CloudEvent, encode_json
from hookbus.errors import ConfigError
from hookbus.settings import as_str
from hookbus.sink import BatchResult, ConsumedRecord, EventRejectedError, Rejection, SinkUnavailableError

__all__ = [
    "NUL_TEXT",
    "PROVIDER_EXTENSION",
    "RECEIVED_TIME_EXTENSION",
    "EventRow",
    "RecordOf",
    "as_identifier",
    "rows_of",
    "sortable_time",
    "write_rows",
]

RecordOf = Callable[[CloudEvent], ConsumedRecord | None]
NUL_TEXT = "\\u0000"
"""What a table stores for U+0000 (which PostgreSQL cannot hold): the six characters of its JSON escape."""
_NUL = "\x00"
_NUL_JSON = b"\\u0000"

# Extensions the normalizer sets on every canonical event; table sinks give them columns.
PROVIDER_EXTENSION = "provider"
RECEIVED_TIME_EXTENSION = "receivedtime"


@dataclass(frozen=True, slots=True)
class EventRow:
    """The canonical columns every table sink stores, one row per event id (NULs as :data:`NUL_TEXT`)."""

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
    kafka_partition: int | None = None
    """Of the record the event was read from; ``None`` outside the runner."""
    kafka_offset: int | None = None

    @classmethod
    def of(cls, event: CloudEvent, record: ConsumedRecord | None = None) -> EventRow:
        """The row of ``event``, read from ``record``; :class:`EventRejectedError` if a time is not RFC 3339."""
        provider = event.extensions.get(PROVIDER_EXTENSION)
        received = event.extensions.get(RECEIVED_TIME_EXTENSION)
        return cls(
            id=_text(event.id),
            type=_text(event.type),
            source=_text(event.source),
            subject=_optional_text(event.subject),
            time=_timestamp(event.time, "time"),
            received_at=_timestamp(str(received) if received is not None else None, RECEIVED_TIME_EXTENSION),
            provider=_optional_text(str(provider) if provider is not None else None),
            partition_key=_optional_text(event.partition_key),
            data=_json_text(event.data_bytes(), lambda: event.data),
            event=_json_text(event.to_json(), event.to_dict),
            kafka_partition=record.partition if record is not None else None,
            kafka_offset=record.offset if record is not None else None,
        )


def sortable_time(moment: datetime) -> str:
    """``moment`` as RFC 3339 text that sorts as time: UTC, microseconds, ``Z`` (``2026-01-01T00:00:00.000000Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _text(value: str) -> str:
    return value.replace(_NUL, NUL_TEXT) if _NUL in value else value


def _optional_text(value: str | None) -> str | None:
    return _text(value) if value is not None else None


def _json_text(encoded: bytes, document: Callable[[], Any]) -> str:
    # The JSON escape of a NUL is rare: only then is the document walked and encoded again.
    if _NUL_JSON not in encoded:
        return encoded.decode("utf-8")
    return encode_json(_without_nul(document())).decode("utf-8")


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(key)): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


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


def rows_of(
    batch: Iterable[CloudEvent], record_of: RecordOf | None = None
) -> tuple[list[tuple[CloudEvent, EventRow]], list[Rejection]]:
    """The rows of a batch (with the records ``record_of`` gives), and the events whose attributes cannot be stored."""
    rows: list[tuple[CloudEvent, EventRow]] = []
    rejected: list[Rejection] = []
    for event in batch:
        try:
            rows.append((event, EventRow.of(event, record_of(event) if record_of is not None else None)))
        except EventRejectedError as exc:
            rejected.append(Rejection(event, exc.reason, exc.detail))
    return rows, rejected


async def write_rows(
    batch: Sequence[CloudEvent],
    write_bulk: Callable[[Sequence[EventRow]], Awaitable[None]],
    write_row: Callable[[EventRow], Awaitable[None]],
    log: structlog.stdlib.BoundLogger,
    record_of: RecordOf | None = None,
) -> BatchResult:
    """Write a batch into a table: in bulk, or row by row when the bulk write is refused.

    ``record_of`` (the sink context's) gives each row its Kafka partition and offset.

    Both callables raise :class:`EventRejectedError` when the database refuses the data and
    :class:`SinkUnavailableError` when it cannot be reached. Only a refused bulk write falls
    back to single rows, to find the events to dead-letter; an unreachable database retries
    the event it failed on and every one after it.
    """
    rows, rejected = rows_of(batch, record_of)
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
