"""The console's own Kafka consumer, feeding its index.

It belongs to no consumer group: it assigns itself every partition of the topics it reads
(the request log, the events, the normalizer's dead letters and each configured sink's), so
every console instance reads everything into its own index and none takes records from
another. Where it is in each partition is stored in the index, in the transaction that adds
the rows read (:meth:`~tools.console.index.IndexDatabase.apply`): a restart seeks to those
offsets and resumes exactly. A partition the index has never read starts at its beginning
(what Kafka still keeps); one whose stored offset Kafka no longer has starts at the earliest
it has. Topics that do not exist yet (a sink that never dead-lettered, a gateway that never
answered) are looked for again every :data:`MISSING_REFRESH_SECONDS`, new partitions every
:data:`REFRESH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

from hookbus.config import HookbusConfig
from hookbus.kafka import client_options, max_record_bytes
from hookbus.logging import get_logger
from hookbus.ops_server import FETCH_FAILING, KAFKA_UNREACHABLE, STARTING
from sinks.configure import configure_sink
from tools.console.index import Index, IndexDatabase, IndexUnavailableError
from tools.console.records import RecordAt, Row, TopicKind, row_of
from tools.console.settings import watched_sinks

__all__ = ["INDEXED", "UNREADABLE", "FedTopic", "Feeder", "fed_topics"]

REFRESH_SECONDS: Final = 30.0
MISSING_REFRESH_SECONDS: Final = 2.0
FETCH_TIMEOUT_MS: Final = 500
FETCH_RECORDS: Final = 1000
RETRY_SECONDS: Final = 1.0
LEASE_RETRY_SECONDS: Final = 5.0
"""How often an instance standing by tries to take over feeding a shared index."""
INDEX_UNAVAILABLE: Final = "index_unavailable"

INDEXED: Final = Counter(
    "hookbus_console_indexed_records_total", "Records the console's index has read, by topic kind.", ["kind"]
)
UNREADABLE: Final = Counter(
    "hookbus_console_unreadable_records_total",
    "Records skipped because they are not what their topic holds, by topic kind.",
    ["kind"],
)


@dataclass(frozen=True, slots=True)
class FedTopic:
    name: str
    kind: TopicKind
    sink: str | None = None
    """Whose dead letters: a sink dead-letter topic's sink."""


def fed_topics(config: HookbusConfig) -> list[FedTopic]:
    """The topics the console reads, as ``config`` names them."""
    kafka = config.kafka
    topics = [
        FedTopic(kafka.requests_topic, TopicKind.REQUESTS),
        FedTopic(kafka.events_topic, TopicKind.EVENTS),
        FedTopic(kafka.dlq_topic, TopicKind.NORMALIZER_DLQ),
    ]
    for name in watched_sinks(config):
        topics.append(FedTopic(configure_sink(config, name).dead_letter_topic, TopicKind.SINK_DLQ, name))
    topics.append(FedTopic(kafka.deliveries_topic, TopicKind.DELIVERIES))
    return topics


class Feeder:
    """Reads :func:`fed_topics` into ``index`` until stopped."""

    def __init__(self, config: HookbusConfig, index: Index) -> None:
        self._config = config
        self._index = index
        self._topics = {topic.name: topic for topic in fed_topics(config)}
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._missing = True
        self._started = False
        self._failing: str | None = None
        self._leased = False
        self._log = get_logger(service="console", component="feeder")

    async def not_ready_reasons(self) -> list[str]:
        if not self._started:
            return [STARTING]
        return [self._failing] if self._failing is not None else []

    async def run(self, stop: asyncio.Event) -> None:
        record_bytes = max_record_bytes(self._config)
        consumer = AIOKafkaConsumer(
            **client_options(self._config.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=record_bytes,
            fetch_max_bytes=max(50 * 1024 * 1024, record_bytes),
        )
        await consumer.start()
        try:
            refreshed = 0.0
            while not stop.is_set():
                if not await self._holds_the_lease(consumer):
                    self._started = True
                    await _sleep_unless(stop, LEASE_RETRY_SECONDS)
                    continue
                interval = MISSING_REFRESH_SECONDS if self._missing else REFRESH_SECONDS
                if time.monotonic() - refreshed >= interval:
                    await self._refresh(consumer)
                    refreshed = time.monotonic()
                    self._started = True
                if not self._assigned:
                    await _sleep_unless(stop, RETRY_SECONDS)
                    continue
                await self._feed_once(consumer, stop)
        finally:
            await consumer.stop()

    async def _holds_the_lease(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether this instance feeds the index now. One that does not (another instance
        feeds a shared index, or the index cannot be reached) reads nothing: when it takes
        over, it starts again from the offsets stored with the rows."""
        try:
            leased = await self._index.run(IndexDatabase.take_writer_lease)
        except IndexUnavailableError as exc:
            self._failing = INDEX_UNAVAILABLE
            self._log.warning("console_index_unavailable", detail=exc.detail)
            leased = False
        else:
            if self._failing == INDEX_UNAVAILABLE:
                self._failing = None
        if leased != self._leased:
            self._log.info("console_feeding" if leased else "console_standing_by")
            self._leased = leased
        if not leased and self._assigned:
            consumer.assign([])
            self._assigned = frozenset()
        return leased

    async def _refresh(self, consumer: AIOKafkaConsumer) -> None:
        """Assign every partition of the fed topics that exists now, each at its stored offset."""
        try:
            # The whole cluster's metadata, which the consumer's own (of its assigned topics only)
            # would not show; aiokafka names no public accessor for the consumer's client.
            cluster = await consumer._client.fetch_all_metadata()
        except KafkaError as exc:
            self._failing = KAFKA_UNREACHABLE
            self._log.warning("console_metadata_failed", error=repr(exc))
            return
        # A partition without a leader yet (a topic created a moment ago) waits for the next
        # refresh: reading it now only gets NotLeaderForPartition, which aiokafka logs as an error.
        wanted = frozenset(
            partition
            for topic in self._topics
            for number in cluster.partitions_for_topic(topic) or ()
            if _has_leader(cluster, partition := TopicPartition(topic, number))
        )
        self._missing = {tp.topic for tp in wanted} != self._topics.keys()
        if wanted == self._assigned:
            return
        stored = await self._index.run(IndexDatabase.stored_offsets)
        consumer.assign(sorted(wanted))
        for tp in wanted:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        self._assigned = wanted
        self._log.info("console_partitions_assigned", partitions=len(wanted))

    async def _feed_once(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        try:
            batch = await consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_RECORDS)
        except KafkaError as exc:
            self._failing = FETCH_FAILING
            self._log.warning("console_fetch_failed", error=repr(exc))
            await _sleep_unless(stop, RETRY_SECONDS)
            return
        self._failing = None
        if not batch:
            return
        next_offsets = {(tp.topic, tp.partition): records[-1].offset + 1 for tp, records in batch.items() if records}
        records = [(self._topics[tp.topic], record) for tp, items in batch.items() for record in items]
        try:
            await self._index.run(lambda database: database.apply(self._rows(records), next_offsets))
        except IndexUnavailableError as exc:
            # The batch is not stored: read it again from the stored offsets once the index is back.
            self._failing = INDEX_UNAVAILABLE
            self._log.warning("console_index_unavailable", detail=exc.detail)
            consumer.assign([])
            self._assigned = frozenset()
            await _sleep_unless(stop, RETRY_SECONDS)

    def _rows(self, records: Sequence[tuple[FedTopic, ConsumerRecord[bytes, bytes]]]) -> list[Row]:
        """The rows of ``records``; runs on the index's thread, off the event loop."""
        rows: list[Row] = []
        for topic, record in records:
            row = row_of(
                topic.kind,
                RecordAt(record.topic, record.partition, record.offset),
                record.timestamp,
                record.headers,
                record.value,
                sink=topic.sink,
            )
            if row is None:
                UNREADABLE.labels(topic.kind.value).inc()
                continue
            INDEXED.labels(topic.kind.value).inc()
            rows.append(row)
        return rows


def _has_leader(cluster: ClusterMetadata, partition: TopicPartition) -> bool:
    leader = cluster.leader_for_partition(partition)
    return leader is not None and leader >= 0


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
