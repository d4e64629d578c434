"""Topic settings: what makes a topic unsafe, and what the cluster says of real topics."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
import structlog
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from hookbus.config import KafkaConfig, parse_config
from hookbus.errors import ConfigError
from hookbus.kafka import (
    MAX_MESSAGE_BYTES,
    MIN_INSYNC_REPLICAS,
    ObservedTopic,
    TopicSpec,
    UnsafeTopicsError,
    check_topics,
    client_options,
    ensure_topics,
    hookbus_topics,
    make_admin,
    make_producer,
    require_safe_topics,
    topic_problems,
    wait_for_group_coordinator,
)
from hookbus.logging import get_logger
from tests.sinks.helpers import eventually

# DescribeConfigs' config_source of a value set on the topic itself (5 is the broker's default).
TOPIC_CONFIG_SOURCE = 1
PRODUCTION = TopicSpec("t", 6, 3, {MIN_INSYNC_REPLICAS: "2", MAX_MESSAGE_BYTES: "1000"})


def observed(partitions: int = 6, replicas: int = 3, min_isr: str = "2", max_bytes: str = "1000") -> ObservedTopic:
    return ObservedTopic("t", partitions, replicas, {MIN_INSYNC_REPLICAS: min_isr, MAX_MESSAGE_BYTES: max_bytes})


def reasons(topic: ObservedTopic, spec: TopicSpec = PRODUCTION) -> list[str]:
    return [problem.reason for problem in topic_problems(spec, topic)]


# --- the rules ----------------------------------------------------------------------------


def test_three_replicas_with_a_min_isr_of_two_are_safe() -> None:
    assert reasons(observed()) == []


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        (observed(partitions=3), ["partitions_below"]),
        (observed(max_bytes="999"), ["max_message_bytes_below"]),
        (observed(replicas=1, min_isr="1"), ["replication_below", "replication_unsafe", "min_isr_below"]),
        (observed(min_isr="1"), ["min_isr_below", "min_isr_unsafe"]),
        (observed(min_isr="3"), ["min_isr_unsafe"]),
    ],
)
def test_each_shortfall_has_its_reason(topic: ObservedTopic, expected: list[str]) -> None:
    assert reasons(topic) == expected


def test_a_min_isr_of_one_beside_other_replicas_is_unsafe_even_when_the_spec_asks_for_it() -> None:
    spec = TopicSpec("t", 1, 2, {MIN_INSYNC_REPLICAS: "1"})

    assert reasons(observed(partitions=1, replicas=2, min_isr="1"), spec) == ["min_isr_unsafe"]
    # Two replicas can never be safe: a min ISR of 2 stops every write when one broker is down.
    assert reasons(observed(partitions=1, replicas=2, min_isr="2"), spec) == ["min_isr_unsafe"]


def test_one_replica_is_unsafe_even_when_the_spec_asks_for_one() -> None:
    assert reasons(observed(replicas=1, min_isr="1"), TopicSpec("t", 6, 1)) == ["replication_unsafe"]


def test_more_than_the_spec_asks_is_no_problem() -> None:
    assert reasons(observed(partitions=12, replicas=5, min_isr="3", max_bytes="5000")) == []


# --- the keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(("replication", "min_isr"), [(1, 1), (2, 1), (3, 2), (5, 4)])
def test_the_min_isr_defaults_to_one_below_the_replication_factor(replication: int, min_isr: int) -> None:
    kafka = parse_config({"kafka": {"replication_factor": replication}}).kafka

    assert kafka.min_insync_replicas == min_isr
    assert hookbus_topics(parse_config({"kafka": {"replication_factor": replication}}))[0].configs[
        MIN_INSYNC_REPLICAS
    ] == str(min_isr)


def test_a_min_isr_above_the_replication_factor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.min_insync_replicas"):
        parse_config({"kafka": {"replication_factor": 3, "min_insync_replicas": 4}})


async def test_the_timeouts_reach_the_clients() -> None:
    kafka = parse_config({"kafka": {"request_timeout_seconds": 1.5, "metadata_max_age_seconds": 20}}).kafka

    assert client_options(kafka)["metadata_max_age_ms"] == 20_000
    assert make_producer(kafka)._request_timeout_ms == 1500
    assert make_admin(kafka)._request_timeout_ms == 1500


# --- against the broker -----------------------------------------------------------------------


async def _create(kafka: KafkaConfig, name: str, partitions: int, configs: dict[str, str]) -> None:
    admin = make_admin(kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


@pytest.mark.kafka
async def test_created_topics_carry_the_min_isr_and_describe_as_configured(kafka_config: KafkaConfig) -> None:
    config = dataclasses.replace(parse_config({}), kafka=kafka_config)
    specs = hookbus_topics(config)
    await ensure_topics(kafka_config, specs)

    problems = await check_topics(kafka_config, specs)

    # The one broker's one replica is all that is wrong with them.
    assert sorted((problem.topic, problem.reason) for problem in problems) == sorted(
        (spec.name, "replication_unsafe") for spec in specs
    )
    # Set on the topics themselves, not the broker's default that happens to be the same here.
    assert await _topic_settings(kafka_config, [spec.name for spec in specs], MIN_INSYNC_REPLICAS) == {
        spec.name: (str(kafka_config.min_insync_replicas), TOPIC_CONFIG_SOURCE) for spec in specs
    }


async def _topic_settings(kafka: KafkaConfig, names: list[str], key: str) -> dict[str, tuple[str, int]]:
    """Each topic's value of ``key`` and where it comes from (DescribeConfigs' config_source)."""
    admin = make_admin(kafka)
    await admin.start()
    try:
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {key: None}) for name in names]
        )
    finally:
        await admin.close()
    resources = [resource for answer in answers for resource in answer.to_object()["resources"]]
    return {
        resource["resource_name"]: (entry["config_value"], entry["config_source"])
        for resource in resources
        for entry in resource["config_entries"]
    }


@pytest.mark.kafka
async def test_existing_topics_with_wrong_settings_are_found(kafka_config: KafkaConfig) -> None:
    name = f"{kafka_config.raw_topic.removesuffix('.raw')}.{uuid.uuid4().hex[:6]}"
    await _create(kafka_config, name, 1, {MAX_MESSAGE_BYTES: "2048"})
    spec = TopicSpec(name, 3, 1, {MIN_INSYNC_REPLICAS: "1", MAX_MESSAGE_BYTES: "4096"})

    async def described() -> list[str]:
        reasons = [problem.reason for problem in await check_topics(kafka_config, [spec])]
        # A topic just created is described once its metadata reaches the listener.
        return [] if "topic_unavailable" in reasons else reasons

    assert await eventually(described) == [
        "partitions_below",
        "replication_unsafe",
        "max_message_bytes_below",
    ]


@pytest.mark.kafka
async def test_outside_development_mode_unsafe_topics_refuse_the_start(kafka_config: KafkaConfig) -> None:
    strict = dataclasses.replace(kafka_config, development_mode=False)
    spec = TopicSpec(kafka_config.raw_topic, 1, 1)
    await ensure_topics(strict, [spec])

    with pytest.raises(UnsafeTopicsError) as refused:
        await require_safe_topics(strict, [spec], get_logger(service="test"))

    assert refused.value.reason == "unsafe_topics"
    assert [problem.reason for problem in refused.value.problems] == ["replication_unsafe"]
    assert not refused.value.retriable


@pytest.mark.kafka
async def test_development_mode_only_warns(kafka_config: KafkaConfig) -> None:
    spec = TopicSpec(kafka_config.raw_topic, 1, 1)
    await ensure_topics(kafka_config, [spec])

    with structlog.testing.capture_logs() as logs:
        await require_safe_topics(kafka_config, [spec], get_logger(service="test"))

    warnings = [entry for entry in logs if entry["event"] == "unsafe_topic"]
    assert [(entry["topic"], entry["reason"]) for entry in warnings] == [(spec.name, "replication_unsafe")]


async def test_a_new_groups_coordinator_is_waited_for_until_it_answers(kafka_config: KafkaConfig) -> None:
    group_id = f"hookbus-test-{uuid.uuid4().hex}"

    assert await wait_for_group_coordinator(kafka_config, group_id, timeout=30.0)

    # The admin client asked for the group's coordinator; the group itself is not created.
    admin = make_admin(kafka_config)
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([group_id])
    finally:
        await admin.close()
    assert [(group[0], group[2]) for group in described.groups] == [(0, "Dead")]


async def test_waiting_for_the_coordinator_ends_when_the_stage_is_stopped(kafka_config: KafkaConfig) -> None:
    stop = asyncio.Event()
    stop.set()

    assert not await wait_for_group_coordinator(kafka_config, f"hookbus-test-{uuid.uuid4().hex}", stop=stop)
