"""The runner's side of a sink instance: its section checked, its type found and loaded.

The section ``sinks.<name>`` carries the runner's own settings (:class:`RunnerSettings`:
batching, filters, retries, dead letters); everything else is the sink's, read into the
sink type's settings dataclass (see :mod:`hookbus.sink`). Sink types are found through the
``hookbus.sinks`` entry point group, built-in and third-party alike.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from hookbus.cloudevent import CloudEvent
from hookbus.config import HookbusConfig, as_int
from hookbus.errors import ConfigError
from hookbus.settings import PARSE, parse_settings
from hookbus.sink import Sink, SinkContext, SinkType

__all__ = [
    "SINK_GROUP",
    "ConfiguredSink",
    "RunnerSettings",
    "configure_sink",
    "load_sink_type",
    "matches_any",
    "sink_types",
]

SINK_GROUP = "hookbus.sinks"


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
    batch_timeout_seconds: float = 0.05
    """Longest wait for a batch to fill after its first record. Under load the batch fills (or the
    read-ahead has it full) long before; at a low rate this wait is most of an event's time
    in the sink, so it is short: 50 ms of latency for batches of tens of events at 1,000/s, a
    transaction each, which a database takes without noticing. Raise it where fewer, larger
    writes matter more than latency (an HTTP destination billing per request)."""
    types: tuple[str, ...] = ()
    """Glob patterns on the event type (``officernd.invoice.*``); empty takes every type."""
    sources: tuple[str, ...] = ()
    """Glob patterns on the event source; empty takes every source."""
    group_id: str | None = None
    dead_letter_topic: str | None = None
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 30.0
    report_deliveries: bool = True
    """Publish a delivery report of each event's outcome to ``kafka.deliveries_topic`` (:mod:`hookbus.delivery`)."""

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
