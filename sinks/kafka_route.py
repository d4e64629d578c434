"""The Kafka sink: route events to other topics by type or source.

Rules are tried in order; the first whose globs match names the topic. An event no rule
matches goes to ``default_topic``, or is dropped (and counted) when there is none. The
record is forwarded as it was read: same key, same headers, same mode (binary or
structured); only outside the runner, where there is no record, is the event encoded
afresh in ``mode``. A record Kafka refuses (too large for its topic, say) is rejected, and
so dead-lettered, only when it is refused on its own: the producer is replaced after a
refusal and the records sent with it are sent again one at a time
(:class:`~hookbus.stage.publisher.Publisher`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import as_str
from hookbus.errors import ConfigError, KafkaUnavailableError
from hookbus.kafka import TopicSpec, ensure_topics, make_producer, require_safe_topics, topic_configs
from hookbus.settings import PARSE, as_choice
from hookbus.sink import BatchResult, Rejection, SinkContext, SinkType, SinkUnavailableError
from hookbus.stage.backoff import is_transient
from hookbus.stage.publisher import Publisher
from sinks.configure import matches_any

__all__ = ["SINK", "KafkaRouteSettings", "KafkaRouteSink", "Route"]


@dataclass(frozen=True, slots=True)
class Route:
    """One rule: events whose type matches one of ``types`` and source one of ``sources`` (globs;
    an empty list matches anything) go to ``topic``."""

    topic: str
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def matches(self, event: CloudEvent) -> bool:
        return matches_any(event.type, self.types) and matches_any(event.source, self.sources)


def _as_topic(value: Any, key: str) -> str:
    topic = as_str(value, key)
    if not topic:
        raise ConfigError("is empty", key=key)
    return topic


@dataclass(frozen=True, slots=True)
class KafkaRouteSettings:
    routes: tuple[Route, ...]
    default_topic: str | None = field(default=None, metadata={PARSE: _as_topic})
    """Where unmatched events go; without it they are dropped and counted."""
    mode: str = field(default=Mode.BINARY.value, metadata={PARSE: as_choice(*(mode.value for mode in Mode))})
    create_topics: bool = True

    def __post_init__(self) -> None:
        if not self.routes:
            raise ConfigError("must be a non-empty list of {topic, types, sources}", key="routes")

    def topic_for(self, event: CloudEvent) -> str | None:
        for route in self.routes:
            if route.matches(event):
                return route.topic
        return self.default_topic


@dataclass(frozen=True, slots=True)
class _Forward:
    """An event's record, bound for its route's topic."""

    event: CloudEvent
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class KafkaRouteSink:
    def __init__(self, settings: KafkaRouteSettings, context: SinkContext) -> None:
        self._settings = settings
        self._context = context
        self._log = context.log
        self._publisher: Publisher | None = None
        self.dropped = 0
        """Events no rule matched and no default topic took, since the sink was opened."""

    async def open(self) -> None:
        kafka = self._context.kafka
        topics = {route.topic for route in self._settings.routes}
        if self._settings.default_topic is not None:
            topics.add(self._settings.default_topic)
        try:
            configs = topic_configs(kafka, self._context.max_record_bytes)
            specs = [
                TopicSpec(topic, kafka.topic_partitions, kafka.replication_factor, configs) for topic in sorted(topics)
            ]
            if self._settings.create_topics:
                await ensure_topics(kafka, specs)
            # The routed topics hold the forwarded events: as safe as the pipeline's own, or refused.
            await require_safe_topics(kafka, specs, self._log)
            publisher = Publisher(
                functools.partial(make_producer, kafka, max_request_size=self._context.max_record_bytes), self._log
            )
            await publisher.start()
        except (KafkaError, KafkaUnavailableError, OSError) as exc:
            raise SinkUnavailableError(f"cannot reach Kafka: {exc!r}") from exc
        self._publisher = publisher

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        if self._publisher is None:
            raise SinkUnavailableError("the sink is not open")
        forwards: list[_Forward] = []
        dropped: list[CloudEvent] = []
        for event in batch:
            topic = self._settings.topic_for(event)
            if topic is None:
                dropped.append(event)
            else:
                forwards.append(self._forward(event, topic))
        written: list[CloudEvent] = list(dropped)
        retry: list[CloudEvent] = []
        rejected: list[Rejection] = []
        for forward, error in zip(forwards, await self._publisher.send_each(forwards), strict=True):
            if error is None:
                written.append(forward.event)
            elif is_transient(error):
                retry.append(forward.event)
            else:
                rejected.append(Rejection(forward.event, "kafka_refused", type(error).__name__))
        if dropped:
            self.dropped += len(dropped)
            self._log.info("sink_events_dropped", count=len(dropped), total=self.dropped)
        return BatchResult(written=written, retry=retry, rejected=rejected)

    def _forward(self, event: CloudEvent, topic: str) -> _Forward:
        record = self._context.record_of(event)
        if record is not None:
            return _Forward(event, topic, record.key, record.value, list(record.headers))
        key, value, headers = event.to_kafka(Mode(self._settings.mode))
        return _Forward(event, topic, key, value, headers)

    async def close(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await publisher.stop()


SINK = SinkType(
    name="kafka",
    settings=KafkaRouteSettings,
    create=KafkaRouteSink,
    description="Route events to other Kafka topics by type or source glob, records forwarded as they are.",
)
