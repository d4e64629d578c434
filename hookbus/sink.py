"""The sink contract: how a destination plugs into hookbus.

A sink **type** is the object an entry point of the ``hookbus.sinks`` group names: a
:class:`SinkType` with a frozen settings dataclass and a factory. An **instance** is one
``sinks: {<name>: {type: ..., ...}}`` section of the configuration. The runner opens the
instance, hands it batches of canonical events, and closes it; every batch comes back as
a :class:`BatchResult` saying what was written, what to try again and what to dead-letter.

The sink's keys of the section are read into its settings dataclass by field name and type
(:func:`hookbus.settings.parse_settings`), so a bad section fails at startup with a
:class:`~hookbus.errors.ConfigError` keyed ``sinks.<name>.<field>``.

This module is all a plugin needs (with :mod:`hookbus.cloudevent`, and
:mod:`hookbus.sink_tables` for table sinks); nothing of the runner is part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Protocol, TypeVar, runtime_checkable

import structlog

from hookbus.cloudevent import CloudEvent
from hookbus.config import KafkaConfig
from hookbus.errors import HookbusError
from hookbus.kafka import MIN_RECORD_BYTES
from hookbus.settings import parse_settings
from hookbus.stage.record import ConsumedRecord

__all__ = [
    "BatchResult",
    "ConsumedRecord",
    "EventRejectedError",
    "ProbedSink",
    "Rejection",
    "Sink",
    "SinkContext",
    "SinkError",
    "SinkType",
    "SinkUnavailableError",
]

SettingsT = TypeVar("SettingsT")


class SinkError(HookbusError):
    """Root of the sinks' errors; ``retriable`` decides retry or dead letter."""

    reason = "sink_error"


class SinkUnavailableError(SinkError):
    """The destination cannot be reached now; the same batch may succeed later."""

    reason = "sink_unavailable"
    retriable = True


class EventRejectedError(SinkError):
    """The destination refuses this event for good; it goes to the sink's dead-letter topic."""

    reason = "event_rejected"


class Rejection(NamedTuple):
    """An event the destination refuses for good: it goes to the sink's dead-letter topic."""

    event: CloudEvent
    reason: str
    """A snake_case token for machines (``invalid_data``, ``http_400``)."""
    detail: str = ""
    """One line for people; never the event's data."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What became of one batch: every event handed to ``write`` belongs in one of the three.

    Events are matched by their ``id``, so the result may hold copies of the events given.
    The runner hands over each event id at most once per batch (a redelivered record of an
    id already in the batch shares that id's outcome). An id left out of all three is tried
    again; one named in more than one takes the least final outcome: retry before rejected
    before written.
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
    """A running instance. ``write`` may also raise: a retriable :class:`SinkError` retries
    the whole batch, a non-retriable one rejects the whole batch with its reason."""

    async def open(self) -> None: ...

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class ProbedSink(Sink, Protocol):
    """A sink that can tell, without writing, whether its destination answers now; its stage is
    not ready (``/readyz``) while it does not, even when no event is waiting to be written."""

    async def reachable(self) -> bool:
        """A cheap round trip to the destination, bounded in time; never raises."""
        ...


def _no_record(_event: CloudEvent) -> ConsumedRecord | None:
    return None


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What an instance may know of its surroundings: its name, a logger bound to it and the
    Kafka connection (for sinks that write to Kafka), never the rest of the configuration."""

    name: str
    log: structlog.stdlib.BoundLogger
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    """The cluster the events are read from, topics included."""
    max_record_bytes: int = MIN_RECORD_BYTES
    """The largest record the pipeline writes; a producer's ``max_request_size``."""
    record_of: Callable[[CloudEvent], ConsumedRecord | None] = _no_record
    """The record an event of the current batch was read from, by event id; ``None`` outside
    the runner. For sinks that forward records as they are (the Kafka router)."""


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
