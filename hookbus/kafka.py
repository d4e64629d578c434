"""Kafka clients and topics, set up one way for every service.

Producers are idempotent with ``acks=all``: an acknowledged record is on every in-sync
replica, and retries never duplicate it. Topics are created with a ``max.message.bytes``
large enough for the largest body a source accepts plus its headers, and with the configured
``min.insync.replicas``. At start-up :func:`require_safe_topics` checks the topics a stage
uses: outside ``kafka.development_mode`` a topic that cannot keep an acknowledged record
(one replica, a min ISR that lets the leader acknowledge alone or that one broker down stops)
refuses the start. Producers and consumers go back to ``bootstrap_servers`` when no broker
they know answers (:mod:`hookbus.rebootstrap`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaError,
    NotCoordinatorForGroupError,
    TopicAlreadyExistsError,
    for_code,
)

from hookbus.config import HookbusConfig, KafkaConfig
from hookbus.errors import HookbusError, KafkaUnavailableError
from hookbus.rebootstrap import rebootstrapping

__all__ = [
    "MIN_RECORD_BYTES",
    "RECORD_OVERHEAD_BYTES",
    "ObservedTopic",
    "TopicProblem",
    "TopicSpec",
    "UnsafeTopicsError",
    "check_topics",
    "client_options",
    "delivery_reports_topic",
    "ensure_topics",
    "hookbus_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "max_record_bytes",
    "request_log_topic",
    "require_safe_topics",
    "topic_configs",
    "topic_partitions",
    "topic_problems",
    "wait_for_group_coordinator",
]

# Room for the hookbus-* headers and the record framing around the largest body.
RECORD_OVERHEAD_BYTES = 64 * 1024
MIN_RECORD_BYTES = 1024 * 1024
MIN_INSYNC_REPLICAS = "min.insync.replicas"
MAX_MESSAGE_BYTES = "max.message.bytes"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


def max_record_bytes(config: HookbusConfig) -> int:
    """The largest record any service may write: the largest body any source accepts, plus headers."""
    largest_body = max((source.max_body_bytes for source in config.sources), default=0)
    return max(MIN_RECORD_BYTES, largest_body + RECORD_OVERHEAD_BYTES)


def topic_configs(kafka: KafkaConfig, record_bytes: int) -> dict[str, str]:
    """The configs of a topic hookbus creates, for records of up to ``record_bytes``."""
    return {MAX_MESSAGE_BYTES: str(record_bytes), MIN_INSYNC_REPLICAS: str(kafka.min_insync_replicas)}


def hookbus_topics(config: HookbusConfig) -> list[TopicSpec]:
    """The topics the pipeline needs: raw, events and the dead-letter topic."""
    kafka = config.kafka
    return [
        TopicSpec(
            name, kafka.topic_partitions, kafka.replication_factor, topic_configs(kafka, max_record_bytes(config))
        )
        for name in (kafka.raw_topic, kafka.events_topic, kafka.dlq_topic)
    ]


def request_log_topic(config: HookbusConfig) -> TopicSpec:
    """The request log's topic: time- and size-bounded, so a flood of refused requests ages out."""
    log = config.request_log
    return _bounded_topic(
        config.kafka, config.kafka.requests_topic, log.retention_hours, log.retention_bytes_per_partition
    )


def delivery_reports_topic(config: HookbusConfig) -> TopicSpec:
    """The sinks' delivery reports' topic: time- and size-bounded, like the request log it is read with."""
    reports = config.delivery_reports
    return _bounded_topic(
        config.kafka, config.kafka.deliveries_topic, reports.retention_hours, reports.retention_bytes_per_partition
    )


def _bounded_topic(kafka: KafkaConfig, name: str, retention_hours: float, retention_bytes: int) -> TopicSpec:
    configs = {
        **topic_configs(kafka, MIN_RECORD_BYTES),
        "retention.ms": str(round(retention_hours * 3_600_000)),
        "retention.bytes": str(retention_bytes),
    }
    return TopicSpec(name, kafka.topic_partitions, kafka.replication_factor, configs)


def client_options(kafka: KafkaConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "metadata_max_age_ms": _milliseconds(kafka.metadata_max_age_seconds),
    }
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.value.decode("utf-8") if kafka.sasl_password is not None else None
        )
    return options


def make_producer(
    kafka: KafkaConfig, *, max_request_size: int = MIN_RECORD_BYTES, **overrides: Any
) -> AIOKafkaProducer:
    """An idempotent, acks=all producer. Not started: the caller owns its lifecycle."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if kafka.compression_type == "none" else kafka.compression_type,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": max_request_size,
        # Also how long a record may wait without a leader before it fails (aiokafka's batch ttl).
        "request_timeout_ms": _milliseconds(kafka.request_timeout_seconds),
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    rebootstrapping(producer.client)
    return producer


def make_consumer(
    kafka: KafkaConfig,
    *topics: str,
    group_id: str,
    max_record_size: int = MIN_RECORD_BYTES,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer in ``group_id`` that commits only when told to (at-least-once).

    It keeps aiokafka's request timeout (40 s): its JoinGroup request is answered only when
    the whole group has rejoined, which a member settling its batch may hold for longer than
    ``kafka.request_timeout_seconds``.
    """
    options: dict[str, Any] = {
        **client_options(kafka),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": max(MIN_RECORD_BYTES, max_record_size),
        "fetch_max_bytes": max(50 * MIN_RECORD_BYTES, max_record_size),
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **options)
    # aiokafka names no public accessor for the consumer's client.
    rebootstrapping(consumer._client)
    return consumer


def make_admin(kafka: KafkaConfig, *, request_timeout_seconds: float | None = None) -> AIOKafkaAdminClient:
    """An admin client. Not started: the caller owns its lifecycle."""
    timeout = kafka.request_timeout_seconds if request_timeout_seconds is None else request_timeout_seconds
    return AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=_milliseconds(timeout))


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


async def ensure_topics(kafka: KafkaConfig, topics: Iterable[TopicSpec], *, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    # Creating waits for the controller and every replica: longer than one ordinary request.
    admin = make_admin(kafka, request_timeout_seconds=timeout)
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            for spec in topics
            if spec.name not in existing
        ]
        if missing:
            # Another service may create one first: that is what we wanted anyway.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            await _until_listed(admin, [topic.name for topic in missing], timeout)
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnavailableError(f"cannot create topics on {kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


GROUP_COORDINATOR_WAIT_SECONDS = 30.0
_COORDINATOR_POLL_SECONDS = 0.1
# What a coordinator answers while it is still being set up: a broker creates the offsets
# topic at the first FindCoordinator it is asked, then loads the group's partition of it.
_COORDINATOR_STARTING = (GroupCoordinatorNotAvailableError, GroupLoadInProgressError, NotCoordinatorForGroupError)


async def wait_for_group_coordinator(
    kafka: KafkaConfig,
    group_id: str,
    *,
    timeout: float = GROUP_COORDINATOR_WAIT_SECONDS,
    stop: asyncio.Event | None = None,
) -> bool:
    """Wait until ``group_id``'s coordinator answers for the group; ``False`` when it still
    does not after ``timeout``, or ``stop`` is set first.

    A consumer started on a brand-new broker before then logs aiokafka's errors and warnings
    (GroupCoordinatorNotAvailable, "Marking the coordinator dead") about what is only the
    broker starting. After the timeout the consumer is started anyway: what it logs then is
    worth reading. A broker that does not answer at all raises :class:`KafkaError`.
    """
    admin = make_admin(kafka)
    try:
        await admin.start()
        async with asyncio.timeout(timeout):
            while stop is None or not stop.is_set():
                with contextlib.suppress(*_COORDINATOR_STARTING):
                    coordinator = await admin.find_coordinator(group_id)
                    described = await admin.describe_consumer_groups([group_id], group_coordinator_id=coordinator)
                    errors = {for_code(group[0]) for response in described for group in response.groups}
                    if not errors & set(_COORDINATOR_STARTING):
                        return True
                await asyncio.sleep(_COORDINATOR_POLL_SECONDS)
            return False
    except TimeoutError:
        return False
    finally:
        await admin.close()


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker describes every new topic with its partitions.

    CreateTopics is answered before the metadata reaches every listener, and a client
    started at once may not see the topic yet.
    """
    async with asyncio.timeout(timeout):
        while True:
            described = await admin.describe_topics(names)
            if all(topic.get("error_code") == 0 and topic.get("partitions") for topic in described):
                return
            await asyncio.sleep(0.05)


# --- checking the topics a stage uses -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    """A topic as the cluster describes it."""

    name: str
    partitions: int
    replication_factor: int
    """The fewest replicas any of its partitions has."""
    configs: Mapping[str, str]
    """Its effective ``min.insync.replicas`` and ``max.message.bytes`` (the broker's default when unset)."""


@dataclass(frozen=True, slots=True)
class TopicProblem:
    """Why a topic cannot keep the promise of a 2xx; ``reason`` is for machines."""

    topic: str
    reason: str
    """``topic_unavailable``, ``partitions_below``, ``replication_below``, ``replication_unsafe``,
    ``min_isr_below``, ``min_isr_unsafe`` or ``max_message_bytes_below``."""
    detail: str

    def __str__(self) -> str:
        return f"{self.topic}: {self.reason}: {self.detail}"


def topic_problems(spec: TopicSpec, observed: ObservedTopic) -> list[TopicProblem]:
    """What is wrong with ``observed`` for a stage that expects ``spec``.

    Below the spec: fewer partitions (the stage's parallelism), fewer replicas, a lower min
    ISR or ``max.message.bytes`` than the spec's configs ask. Unsafe whatever the spec: one
    replica (a lost disk loses acknowledged records), a min ISR of 1 beside other replicas
    (``acks=all`` is then met by the leader alone, e.g. while the followers lag), or a min ISR
    as large as the replication factor (one broker down stops every write).
    """

    def problem(reason: str, detail: str) -> TopicProblem:
        return TopicProblem(spec.name, reason, detail)

    problems = []
    if observed.partitions < spec.partitions:
        problems.append(problem("partitions_below", f"{observed.partitions} partitions, {spec.partitions} expected"))
    replicas = observed.replication_factor
    if replicas < spec.replication_factor:
        problems.append(problem("replication_below", f"{replicas} replicas, {spec.replication_factor} expected"))
    if replicas < 2:
        problems.append(problem("replication_unsafe", "one replica: losing its broker loses acknowledged records"))
    min_isr = int(observed.configs.get(MIN_INSYNC_REPLICAS, "1"))
    if MIN_INSYNC_REPLICAS in spec.configs and min_isr < int(spec.configs[MIN_INSYNC_REPLICAS]):
        problems.append(problem("min_isr_below", f"{min_isr}, {spec.configs[MIN_INSYNC_REPLICAS]} expected"))
    if replicas > 1 and min_isr < 2:
        problems.append(problem("min_isr_unsafe", f"{min_isr} of {replicas} replicas: the leader alone acknowledges"))
    elif replicas > 1 and min_isr >= replicas:
        problems.append(problem("min_isr_unsafe", f"{min_isr} of {replicas} replicas: one broker down stops writes"))
    if MAX_MESSAGE_BYTES in spec.configs:
        limit, needed = int(observed.configs.get(MAX_MESSAGE_BYTES, "0")), int(spec.configs[MAX_MESSAGE_BYTES])
        if limit < needed:
            problems.append(problem("max_message_bytes_below", f"{limit} bytes, {needed} needed"))
    return problems


class UnsafeTopicsError(HookbusError):
    """The topics a stage uses cannot keep an acknowledged record; fixing them takes an operator."""

    reason = "unsafe_topics"

    def __init__(self, problems: Sequence[TopicProblem]) -> None:
        super().__init__(
            "unsafe topic settings (set kafka.development_mode on a single broker): "
            + "; ".join(str(problem) for problem in problems)
        )
        self.problems = tuple(problems)

    def log_fields(self) -> dict[str, Any]:
        """What a stage logs when it refuses to start: the reason and each problem."""
        return {"reason": self.reason, "problems": [str(problem) for problem in self.problems]}


async def check_topics(kafka: KafkaConfig, specs: Iterable[TopicSpec]) -> list[TopicProblem]:
    """Describe the topics of ``specs`` on the cluster and say what is wrong with each."""
    wanted = {spec.name: spec for spec in specs}
    admin = make_admin(kafka)
    try:
        await admin.start()
        described = await admin.describe_topics(list(wanted))
        answers = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {MIN_INSYNC_REPLICAS: None, MAX_MESSAGE_BYTES: None})
                for name in wanted
            ]
        )
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnavailableError(f"cannot describe topics on {kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for answer in answers:
        for resource in answer.to_object()["resources"]:
            if resource["error_code"] == 0:
                entries = resource["config_entries"]
                configs[resource["resource_name"]] = {entry["config_names"]: entry["config_value"] for entry in entries}
    problems: list[TopicProblem] = []
    for topic in described:
        name, partitions = topic["topic"], topic["partitions"]
        if topic["error_code"] != 0 or not partitions or name not in configs:
            problems.append(TopicProblem(name, "topic_unavailable", f"not described (error {topic['error_code']})"))
            continue
        replicas = min(len(partition["replicas"]) for partition in partitions)
        problems += topic_problems(wanted[name], ObservedTopic(name, len(partitions), replicas, configs[name]))
    return problems


async def topic_partitions(kafka: KafkaConfig, topic: str) -> list[int]:
    """The partition numbers of ``topic``; none when the topic does not exist."""
    admin = make_admin(kafka)
    try:
        await admin.start()
        (described,) = await admin.describe_topics([topic])
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnavailableError(f"cannot describe {topic} on {kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()
    if described["error_code"] != 0:
        return []
    return sorted(int(partition["partition"]) for partition in described["partitions"])


async def require_safe_topics(
    kafka: KafkaConfig, specs: Iterable[TopicSpec], log: structlog.stdlib.BoundLogger
) -> None:
    """Check the topics a stage uses: :class:`~hookbus.errors.UnsafeTopicsError` if any cannot
    keep an acknowledged record, or a warning per problem in ``kafka.development_mode``."""
    problems = await check_topics(kafka, specs)
    if kafka.development_mode:
        for problem in problems:
            log.warning("unsafe_topic", topic=problem.topic, reason=problem.reason, detail=problem.detail)
        return
    if problems:
        raise UnsafeTopicsError(problems)
