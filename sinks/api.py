"""The sink API: how a destination plugs into hookbus.

A sink **type** is the object an entry point of the ``hookbus.sinks`` group names: a
:class:`SinkType` with a frozen settings dataclass and a factory. An **instance** is one
``sinks: {<name>: {type: ..., ...}}`` section of the configuration. The runner opens the
instance, hands it batches of canonical events, and closes it; every batch comes back as
a :class:`BatchResult` saying what was written, what to try again and what to dead-letter.

The section also carries the runner's own settings (:class:`RunnerSettings`); everything
else is the sink's, read into its settings dataclass by field name and type (``str``,
``int``, ``float``, ``bool``, ``tuple[str, ...]``, ``Secret``, ``Mapping[str, str]``, or
``field(metadata={"parse": fn})`` for anything else), so a bad section fails at startup
with a :class:`~hookbus.errors.ConfigError` keyed ``sinks.<name>.<field>``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import structlog

from hookbus.cloudevent import CloudEvent
from hookbus.config import (
    HookbusConfig,
    Secret,
    as_bool,
    as_float,
    as_int,
    as_secret,
    as_str,
    as_str_list,
    as_str_mapping,
)
from hookbus.errors import ConfigError
from sinks.errors import EventRejectedError, SinkUnavailableError

SINK_GROUP = "hookbus.sinks"
PARSE = "parse"
"""Key of ``dataclasses.field(metadata=...)`` naming a ``(value, key) -> value`` converter."""

# Extensions the normalizer sets on every canonical event; table sinks give them columns.
PROVIDER_EXTENSION = "provider"
RECEIVED_TIME_EXTENSION = "receivedtime"

SettingsT = TypeVar("SettingsT")
_T = TypeVar("_T")


# --- what a sink is -----------------------------------------------------------------------


class Rejection(NamedTuple):
    """An event the destination refuses for good: it goes to the sink's dead-letter topic."""

    event: CloudEvent
    reason: str
    """A snake_case token for machines (``invalid_data``, ``http_400``)."""
    detail: str = ""
    """One line for people; never the event's data."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one batch. Every event handed to ``write`` is in exactly one of the three.

    Return the very event objects you were given: the runner finds each one's Kafka record by
    identity. An event left out of all three is tried again.
    """

    written: Sequence[CloudEvent] = ()
    retry: Sequence[CloudEvent] = ()
    rejected: Sequence[Rejection] = ()
    retry_after: float | None = None
    """The destination asked to wait this long (seconds) before the retry, e.g. ``Retry-After``."""

    @classmethod
    def all_written(cls, events: Sequence[CloudEvent]) -> BatchResult:
        return cls(written=events)


class Sink(Protocol):
    """A running instance. ``write`` may also raise: a retriable :class:`~sinks.errors.SinkError`
    retries the whole batch, a non-retriable one rejects the whole batch with its reason."""

    async def open(self) -> None: ...

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult: ...

    async def close(self) -> None: ...


class ConsumedRecord(Protocol):
    """The Kafka record an event was read from (an aiokafka ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What an instance may know of its surroundings."""

    name: str
    config: HookbusConfig
    log: structlog.stdlib.BoundLogger
    record_of: Callable[[CloudEvent], ConsumedRecord | None] = lambda _event: None
    """The record an event of the current batch came from; ``None`` outside the runner.
    For sinks that forward records as they are (the Kafka router)."""


@dataclass(frozen=True, slots=True)
class SinkType(Generic[SettingsT]):
    """The entry point object: ``SINK = SinkType("jsonl", JsonlSettings, JsonlSink, "...")``."""

    name: str
    settings: type[SettingsT]
    """A frozen dataclass; its fields are the sink's keys in the configuration section."""
    create: Callable[[SettingsT, SinkContext], Sink]
    description: str = ""

    def parse(self, instance: str, section: Mapping[str, Any]) -> SettingsT:
        return parse_settings(self.settings, section, prefix=f"sinks.{instance}")


# --- the runner's settings, shared by every sink -------------------------------------------


def _as_positive_int(value: Any, key: str) -> int:
    number = as_int(value, key)
    if number < 1:
        raise ConfigError("must be at least 1", key=key)
    return number


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """How ``hookbus sink <name>`` feeds an instance: batching, filters, retries, dead letters."""

    type: str
    batch_size: int = dataclasses.field(default=500, metadata={PARSE: _as_positive_int})
    batch_timeout_seconds: float = 1.0
    types: tuple[str, ...] = ()
    """Glob patterns on the event type (``officernd.invoice.*``); empty takes every type."""
    sources: tuple[str, ...] = ()
    """Glob patterns on the event source; empty takes every source."""
    group_id: str | None = None
    dead_letter_topic: str | None = None
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 30.0

    def accepts(self, event: CloudEvent) -> bool:
        return matches_any(event.type, self.types) and matches_any(event.source, self.sources)


def matches_any(value: str, patterns: Sequence[str]) -> bool:
    """Whether ``value`` matches one of the glob ``patterns``; no patterns at all match everything."""
    return not patterns or any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


RUNNER_KEYS = frozenset(field.name for field in dataclasses.fields(RunnerSettings))


@dataclass(frozen=True, slots=True)
class ConfiguredSink:
    """One checked ``sinks.<name>`` section: the runner's settings and the sink's own."""

    name: str
    runner: RunnerSettings
    sink_type: SinkType[Any]
    settings: Any
    group_id: str
    dead_letter_topic: str

    def create(self, context: SinkContext) -> Sink:
        return self.sink_type.create(self.settings, context)


def configure_sink(config: HookbusConfig, name: str) -> ConfiguredSink:
    """Check the section ``sinks.<name>`` and find its type; :class:`ConfigError` if anything is wrong."""
    try:
        return _configure_sink(config, name)
    except ConfigError as exc:
        raise exc.located(file=config.path) from exc


def _configure_sink(config: HookbusConfig, name: str) -> ConfiguredSink:
    section = config.sinks.get(name)
    if section is None:
        known = ", ".join(sorted(config.sinks)) or "none"
        raise ConfigError(f"no sink named {name!r} in the configuration (configured: {known})", key="sinks")
    prefix = f"sinks.{name}"
    runner = parse_settings(RunnerSettings, {k: v for k, v in section.items() if k in RUNNER_KEYS}, prefix=prefix)
    available = sink_types()
    entry = available.get(runner.type)
    if entry is None:
        known = ", ".join(sorted(available)) or "none installed"
        raise ConfigError(f"unknown sink type {runner.type!r}; known: {known}", key=f"{prefix}.type")
    sink_type = load_sink_type(entry)
    settings = sink_type.parse(name, {k: v for k, v in section.items() if k not in RUNNER_KEYS})
    return ConfiguredSink(
        name=name,
        runner=runner,
        sink_type=sink_type,
        settings=settings,
        group_id=runner.group_id or f"hookbus-sink-{name}",
        dead_letter_topic=runner.dead_letter_topic or f"{config.kafka.events_topic}.dlq.{name}",
    )


# --- discovery ----------------------------------------------------------------------------


def sink_types() -> dict[str, EntryPoint]:
    """The installed sink types by name, built-in and third-party alike, not yet imported."""
    return {entry.name: entry for entry in entry_points(group=SINK_GROUP)}


def load_sink_type(entry: EntryPoint) -> SinkType[Any]:
    sink_type = entry.load()
    if not isinstance(sink_type, SinkType):
        raise ConfigError(f"entry point {entry.value} is not a hookbus SinkType", key=f"sinks type {entry.name}")
    return sink_type


# --- reading a section into a settings dataclass -------------------------------------------


def parse_settings(settings_type: type[_T], section: Mapping[str, Any], *, prefix: str) -> _T:
    """Build ``settings_type`` from ``section``: unknown keys, missing keys and bad values are
    :class:`ConfigError` keyed ``<prefix>.<field>``. A ``ConfigError`` raised by the class
    itself (``__post_init__``) with ``key=<field>`` is keyed the same way."""
    if not dataclasses.is_dataclass(settings_type):
        raise TypeError(f"{settings_type.__name__} is not a dataclass")
    fields = {field.name: field for field in dataclasses.fields(settings_type) if field.init}
    for key in section:
        if key not in fields:
            raise ConfigError("unknown key", key=f"{prefix}.{key}")
    hints = typing.get_type_hints(settings_type)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        value = section.get(name)
        if value is None:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError("is required", key=key)
            continue
        convert = field.metadata.get(PARSE) or _converter(hints[name], key)
        values[name] = convert(value, key)
    try:
        return settings_type(**values)
    except ConfigError as exc:
        located = exc.key if exc.key and exc.key.startswith(prefix) else f"{prefix}.{exc.key or ''}".rstrip(".")
        raise ConfigError(exc.detail, key=located) from exc


_CONVERTERS: dict[Any, Callable[[Any, str], Any]] = {
    str: as_str,
    int: as_int,
    float: as_float,
    bool: as_bool,
    Secret: as_secret,
    tuple[str, ...]: as_str_list,
    Mapping[str, str]: as_str_mapping,
    dict[str, str]: as_str_mapping,
}


def _converter(hint: Any, key: str) -> Callable[[Any, str], Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
        if len(kinds) == 1:
            hint = kinds[0]
    convert = _CONVERTERS.get(hint)
    if convert is None:
        raise TypeError(f"{key}: no converter for {hint!r}; give field(metadata={{'parse': ...}})")
    return convert


def as_choice(*choices: str) -> Callable[[Any, str], str]:
    """A converter accepting one of ``choices``."""

    def convert(value: Any, key: str) -> str:
        text = as_str(value, key)
        if text not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, not {text!r}", key=key)
        return text

    return convert


def as_identifier(value: Any, key: str) -> str:
    """A plain SQL identifier (table names are put into statements, so nothing else is allowed)."""
    text = as_str(value, key)
    if not text.isascii() or not text.replace("_", "a").isalnum() or text[0].isdigit() or len(text) > 63:
        raise ConfigError("must be letters, digits and '_' (at most 63, not starting with a digit)", key=key)
    return text.lower()


# --- helpers for table sinks ---------------------------------------------------------------


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
