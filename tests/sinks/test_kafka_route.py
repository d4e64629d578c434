"""The Kafka sink: records routed by type and source, forwarded as they were read."""

from __future__ import annotations

import dataclasses
import os

import pytest

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import KafkaConfig
from hookbus.kafka import TopicSpec, UnsafeTopicsError, ensure_topics
from hookbus.logging import get_logger
from hookbus.sink import SinkContext
from sinks.kafka_route import SINK, KafkaRouteSink
from tests.sinks.helpers import (
    committed_offsets,
    config_with,
    event,
    eventually,
    header,
    publish,
    read_topic,
    running_sink,
)


@pytest.mark.kafka
async def test_records_go_to_the_first_matching_route_unchanged_and_the_unmatched_are_dropped(
    kafka_config: KafkaConfig,
) -> None:
    prefix = kafka_config.events_topic.removesuffix(".events")
    invoices, october = f"{prefix}.invoices", f"{prefix}.october"
    section = {
        "type": "kafka",
        "batch_timeout_seconds": 0.2,
        "routes": [
            {"topic": invoices, "types": ["officernd.invoice.*"]},
            {"topic": october, "sources": ["hookbus/october-*"]},
        ],
    }
    invoice = event(1, type="officernd.invoice.paid", key="invoice-1")
    structured_invoice = event(2, type="officernd.invoice.created", key="invoice-2")
    offer = event(3, type="october.new_offer", source="hookbus/october-live", key="offer-3")
    unmatched = event(4, type="officernd.member.created")
    sent = {
        invoice.id: invoice.to_kafka(Mode.BINARY),
        structured_invoice.id: structured_invoice.to_kafka(Mode.STRUCTURED),
        offer.id: offer.to_kafka(Mode.BINARY),
    }
    await publish(kafka_config, [sent[invoice.id], sent[structured_invoice.id], sent[offer.id], unmatched])

    async with running_sink(config_with({"route": section}, kafka_config), "route"):
        routed_invoices = await read_topic(kafka_config, invoices, 2)
        routed_october = await read_topic(kafka_config, october, 1)

    def as_sent(record: object) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        return (record.key, record.value, list(record.headers))  # type: ignore[attr-defined]

    assert sorted(as_sent(record) for record in routed_invoices) == sorted(
        [sent[invoice.id], sent[structured_invoice.id]]
    )
    assert [as_sent(record) for record in routed_october] == [sent[offer.id]]
    decoded = {CloudEvent.from_kafka(record.headers, record.value).id for record in routed_invoices}
    assert decoded == {invoice.id, structured_invoice.id}
    # The unmatched event went nowhere: a second look finds nothing more in either topic.
    everything = [
        *await read_topic(kafka_config, invoices, 3, timeout=2),
        *await read_topic(kafka_config, october, 2, timeout=2),
    ]
    assert unmatched.id not in {CloudEvent.from_kafka(record.headers, record.value).id for record in everything}
    assert len(everything) == 3


def test_unmatched_events_go_to_the_default_topic_when_there_is_one() -> None:
    section = {"routes": [{"topic": "invoices", "types": ["*.invoice.*"]}], "default_topic": "rest"}
    settings = SINK.parse("route", section)
    assert settings.topic_for(event(1, type="officernd.invoice.paid")) == "invoices"
    assert settings.topic_for(event(1, type="officernd.member.created")) == "rest"
    assert SINK.parse("route", {"routes": section["routes"]}).topic_for(event(1)) is None


@pytest.mark.kafka
async def test_a_record_the_route_topic_refuses_is_dead_lettered_alone_and_the_others_get_through(
    kafka_config: KafkaConfig,
) -> None:
    routed = kafka_config.events_topic.removesuffix(".events") + ".small"
    # A topic that takes small records only: Kafka refuses the producer batch holding the large one.
    await ensure_topics(kafka_config, [TopicSpec(routed, 1, 1, {"max.message.bytes": "4096"})])
    section = {"type": "kafka", "batch_timeout_seconds": 0.5, "routes": [{"topic": routed}], "create_topics": False}
    before, after = event(1, key="member-1"), event(3, key="member-1")
    large = event(2, key="member-1", data={"notes": os.urandom(8192).hex()})
    await publish(kafka_config, [before, large, after])

    async with running_sink(config_with({"route": section}, kafka_config), "route"):
        letters = await read_topic(kafka_config, f"{kafka_config.events_topic}.dlq.route", 1)
        forwarded = await read_topic(kafka_config, routed, 2)
        assert await eventually(lambda: _all_committed(kafka_config, 3))

    assert [header(letter, "ce_id") for letter in letters] == [large.id]
    assert (header(letters[0], "hookbus-dlq-reason"), header(letters[0], "hookbus-dlq-detail")) == (
        "kafka_refused",
        "MessageSizeTooLargeError",
    )
    assert [CloudEvent.from_kafka(record.headers, record.value).id for record in forwarded] == [before.id, after.id]


async def _all_committed(kafka: KafkaConfig, total: int) -> bool:
    return await committed_offsets(kafka, "hookbus-sink-route", kafka.events_topic) == total


@pytest.mark.kafka
async def test_the_sink_refuses_to_open_on_unsafe_routed_topics_outside_development_mode(
    kafka_config: KafkaConfig,
) -> None:
    strict = dataclasses.replace(kafka_config, development_mode=False)
    routed = strict.events_topic.removesuffix(".events") + ".routed"
    sink = KafkaRouteSink(
        SINK.parse("route", {"routes": [{"topic": routed}]}), SinkContext("route", get_logger(), strict)
    )

    with pytest.raises(UnsafeTopicsError) as refused:
        await sink.open()

    # Created with the pipeline's settings, min ISR included: only the one broker's one replica is wrong.
    assert [(problem.topic, problem.reason) for problem in refused.value.problems] == [(routed, "replication_unsafe")]
