"""Lag per stage: how far each consumer group's committed offsets are behind the end offsets.

Asked at most once per :data:`CACHE_SECONDS` whatever the number of pages polling: one
offset listing per group (the normalizer's, each sink's) and one end-offset request for the
raw and events topics, all at once; the answer is reused until it is older than that.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaError,
    NotCoordinatorForGroupError,
)

from hookbus.config import HookbusConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import client_options, make_admin
from normalizer.settings import parse_settings as normalizer_settings
from sinks.configure import configure_sink
from tools.console.records import NORMALIZER_STAGE, SINK_STAGE_PREFIX
from tools.console.settings import watched_sinks

__all__ = ["CACHE_SECONDS", "LagProbe", "StageGroup", "stage_groups"]

_T = TypeVar("_T")

CACHE_SECONDS: Final = 5.0
COORDINATOR_WAIT_SECONDS: Final = 3.0
"""How long a group whose coordinator is still starting (a new group, a broker starting) is asked again."""
_COORDINATOR_STARTING: Final = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)


@dataclass(frozen=True, slots=True)
class StageGroup:
    stage: str
    group: str
    topic: str


def stage_groups(config: HookbusConfig) -> list[StageGroup]:
    """The consumer group of each stage ``config`` configures, and the topic it reads."""
    groups = [
        StageGroup(
            NORMALIZER_STAGE,
            normalizer_settings(config.normalizer, path=config.path).group_id,
            config.kafka.raw_topic,
        )
    ]
    for name in watched_sinks(config):
        groups.append(
            StageGroup(SINK_STAGE_PREFIX + name, configure_sink(config, name).group_id, config.kafka.events_topic)
        )
    return groups


class LagProbe:
    def __init__(self, config: HookbusConfig) -> None:
        self._groups = stage_groups(config)
        self._admin: AIOKafkaAdminClient = make_admin(config.kafka)
        self._consumer = AIOKafkaConsumer(**client_options(config.kafka), group_id=None, enable_auto_commit=False)
        self._answer: tuple[float, list[dict[str, Any]]] | None = None
        self._asking: asyncio.Task[list[dict[str, Any]]] | None = None

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def lag(self) -> list[dict[str, Any]]:
        """``[{stage, group, lag}]``; :class:`KafkaUnavailableError` when Kafka does not answer."""
        if self._answer is not None and time.monotonic() - self._answer[0] < CACHE_SECONDS:
            return self._answer[1]
        # Concurrent requests share one question.
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask())
        answer = await asyncio.shield(self._asking)
        self._answer = (time.monotonic(), answer)
        return answer

    async def _committed(self, group: str) -> dict[TopicPartition, Any]:
        offsets: dict[TopicPartition, Any] = await _retried(lambda: self._admin.list_consumer_group_offsets(group))
        return offsets

    async def _ask(self) -> list[dict[str, Any]]:
        # One metadata request for the topics' partitions (aiokafka names no public accessor
        # for the consumer's client), one end-offset request, one offset listing per group.
        try:
            committed = await asyncio.gather(*(self._committed(group.group) for group in self._groups))
            cluster = await self._consumer._client.fetch_all_metadata()
            partitions = [
                TopicPartition(topic, number)
                for topic in sorted({group.topic for group in self._groups})
                for number in cluster.partitions_for_topic(topic) or ()
            ]
            ends = await self._consumer.end_offsets(partitions) if partitions else {}
        except KafkaError as exc:
            raise KafkaUnavailableError(f"cannot ask for the stages' offsets: {exc!r}") from exc
        return [
            {"stage": group.stage, "group": group.group, "lag": _lag(group.topic, offsets, ends)}
            for group, offsets in zip(self._groups, committed, strict=True)
        ]


async def _retried(ask: Callable[[], Awaitable[_T]]) -> _T:
    deadline = time.monotonic() + COORDINATOR_WAIT_SECONDS
    while True:
        try:
            return await ask()
        except _COORDINATOR_STARTING:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


def _lag(topic: str, committed: Mapping[TopicPartition, Any], ends: Mapping[TopicPartition, int]) -> int:
    """Records of ``topic`` after the group's committed offsets (all of a partition it never committed)."""
    total = 0
    for tp, end in ends.items():
        if tp.topic != topic:
            continue
        done = committed.get(tp)
        total += max(0, end - (done.offset if done is not None and done.offset >= 0 else 0))
    return total
