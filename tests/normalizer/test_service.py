"""The normalizer service against a real broker: events in order, dead letters kept whole, no gaps.

The helpers at the top (a pipeline config, raw records, reading a topic) are shared with
the replay tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from hookbus.cloudevent import STRUCTURED_CONTENT_TYPE, CloudEvent, Mode
from hookbus.config import HookbusConfig, KafkaConfig, SourceConfig, parse_config
from hookbus.errors import ConfigError
from hookbus.kafka import client_options, ensure_topics, hookbus_topics, make_producer
from hookbus.rawevent import RawEvent
from hookbus.stage.deadletter import Failure
from normalizer.deadletter import DeadLetter
from normalizer.service import map_record, run, stage_settings
from normalizer.settings import parse_settings
from tests.support import running_service

SECRET = "officernd-test-secret"
READ_DEADLINE_SECONDS = 30.0
FAST = {"batch_timeout_ms": 50, "retry_backoff_ms": 20, "retry_backoff_max_ms": 200}
_ingest_ids = itertools.count()

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def officernd_source(name: str) -> dict[str, Any]:
    return {"name": name, "provider": "officernd", "secrets": [SECRET]}


def pipeline_config(
    kafka: KafkaConfig, *source_names: str, normalizer: Mapping[str, Any] | None = None
) -> HookbusConfig:
    """A configuration with OfficeRnD sources of these names on the test's topics."""
    raw = {
        "sources": [officernd_source(name) for name in source_names],
        # A group of the test's own, so tests running side by side never share a rebalance.
        "normalizer": {"group_id": f"{kafka.client_id}-normalizer", **FAST, **(normalizer or {})},
    }
    return dataclasses.replace(parse_config(raw, path="test.yaml"), kafka=kafka)


def member_update(member: int, sequence: int, *, extra: Mapping[str, Any] | None = None) -> bytes:
    """The body OfficeRnD posts when member ``member`` is updated for the ``sequence``-th time."""
    return orjson.dumps(
        {
            "event": f"evt-{member}-{sequence}",
            "eventType": "member.updated",
            "data": {
                "object": {"_id": f"member{member}", "name": f"name {sequence}", **(extra or {})},
                "previousAttributes": {"name": f"name {sequence - 1}"},
            },
            "createdAt": "2024-05-01T10:00:00.000Z",
        }
    )


def raw_record(source: str, body: bytes) -> Record:
    """A raw-topic record as the gateway writes it."""
    raw = RawEvent(
        source=source,
        provider="officernd",
        ingest_id=f"ingest-{next(_ingest_ids)}",
        received_at=time.time(),
        body=body,
        content_type="application/json",
        headers={"officernd-signature": "t=1,signature=00"},
    )
    return raw.kafka_key, raw.body, raw.kafka_headers()


async def produce(
    kafka: KafkaConfig, topic: str, records: Sequence[Record], *, partitions: Sequence[int] | None = None
) -> list[int]:
    """Publish ``records`` in order (each to its partition in ``partitions``, else by key); their offsets."""
    producer = make_producer(kafka)
    await producer.start()
    try:
        acknowledgements = [
            await producer.send(
                topic, value, key=key, headers=headers, partition=partitions[index] if partitions else None
            )
            for index, (key, value, headers) in enumerate(records)
        ]
        return [metadata.offset for metadata in await asyncio.gather(*acknowledgements)]
    finally:
        await producer.stop()


async def read_topic(kafka: KafkaConfig, topic: str, count: int) -> list[Any]:
    """The first ``count`` records of ``topic`` (every partition, each in order); fails the
    test when they are not all there within :data:`READ_DEADLINE_SECONDS`."""
    return await _read_until(kafka, topic, lambda records: len(records) >= count, f"{count} records")


async def read_events_until(kafka: KafkaConfig, ids: set[str]) -> list[CloudEvent]:
    """The events topic from its start until every one of ``ids`` is there (duplicates included)."""

    def complete(records: list[Any]) -> bool:
        return ids <= {event.id for event in events_of(records)}

    return events_of(await _read_until(kafka, kafka.events_topic, complete, f"{len(ids)} event ids"))


async def _read_until(kafka: KafkaConfig, topic: str, done: Callable[[list[Any]], bool], wanted: str) -> list[Any]:
    consumer = AIOKafkaConsumer(**client_options(kafka), group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign(partitions_of(kafka, topic))
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + READ_DEADLINE_SECONDS
        while not done(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for partition_records in batch.values():
                records.extend(partition_records)
    finally:
        await consumer.stop()
    if not done(records):
        pytest.fail(f"{topic}: not {wanted} within {READ_DEADLINE_SECONDS} s (read {len(records)} records)")
    return records


def partitions_of(kafka: KafkaConfig, topic: str) -> list[TopicPartition]:
    # Every test topic is created with the configured number of partitions.
    return [TopicPartition(topic, number) for number in range(kafka.topic_partitions)]


async def topic_size(kafka: KafkaConfig, topic: str) -> int:
    """How many records ``topic`` holds (its end offsets summed)."""
    consumer = AIOKafkaConsumer(**client_options(kafka), group_id=None)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions_of(kafka, topic))).values())
    finally:
        await consumer.stop()


def write_config_file(folder: Path, config: HookbusConfig) -> Path:
    """``config`` (as :func:`pipeline_config` makes it) as a YAML file, for the commands."""
    kafka = {
        name: getattr(config.kafka, name)
        for name in (
            "bootstrap_servers",
            "client_id",
            "raw_topic",
            "events_topic",
            "dlq_topic",
            "topic_partitions",
            "development_mode",
        )
    }
    sources = [officernd_source(source.name) for source in config.sources]
    path = folder / "hookbus.yaml"
    path.write_text(
        yaml.safe_dump({"kafka": kafka, "sources": sources, "normalizer": dict(config.normalizer)}), encoding="utf-8"
    )
    return path


def running_normalizer(config: HookbusConfig) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """The service running on ``config``; stopped (batch finished, committed) on leaving."""
    return running_service(
        lambda stop, ready: run(config, stop=stop, ready=ready), "the normalizer", timeout=READ_DEADLINE_SECONDS
    )


def events_of(records: Sequence[Any]) -> list[CloudEvent]:
    return [CloudEvent.from_kafka(record.headers, record.value) for record in records]


# --- events flow ------------------------------------------------------------------------


async def test_a_burst_flows_to_the_events_topic_in_order_per_entity(kafka_config: KafkaConfig) -> None:
    config = pipeline_config(kafka_config, "rnd", normalizer={"batch_size": 37})
    members, updates = 5, 200
    bodies = [member_update(index % members, index // members) for index in range(updates)]

    async with running_normalizer(config):
        await produce(kafka_config, kafka_config.raw_topic, [raw_record("rnd", body) for body in bodies])
        records = await read_topic(kafka_config, kafka_config.events_topic, updates)

    sequences: dict[str, list[int]] = defaultdict(list)
    for record in records:
        event = CloudEvent.from_kafka(record.headers, record.value)
        headers = dict(record.headers)
        assert record.key == f"officernd:member:{event.subject}".encode()
        assert headers["ce_partitionkey"] == record.key
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_source"] == b"/webhooks/rnd"
        assert headers["ce_type"] == b"officernd.member.updated"
        assert headers["content-type"] == b"application/json"
        assert orjson.loads(record.value)["resource_id"] == event.subject
        sequences[str(event.subject)].append(int(event.id.rsplit("-", 1)[1]))
    assert sorted(sequences) == [f"member{member}" for member in range(members)]
    for received in sequences.values():
        assert received == list(range(updates // members))


async def test_structured_mode_puts_the_whole_event_in_the_value(kafka_config: KafkaConfig) -> None:
    config = pipeline_config(kafka_config, "rnd", normalizer={"mode": "structured"})

    async with running_normalizer(config):
        await produce(kafka_config, kafka_config.raw_topic, [raw_record("rnd", member_update(7, 1))])
        [record] = await read_topic(kafka_config, kafka_config.events_topic, 1)

    assert dict(record.headers) == {"content-type": STRUCTURED_CONTENT_TYPE.encode()}
    document = orjson.loads(record.value)
    assert (document["id"], document["type"], document["partitionkey"]) == (
        "rnd:evt-7-1",
        "officernd.member.updated",
        "officernd:member:member7",
    )
    assert record.key == b"officernd:member:member7"


# --- dead letters -----------------------------------------------------------------------


async def test_poison_records_are_dead_lettered_whole_and_the_partition_keeps_flowing(
    kafka_config: KafkaConfig,
) -> None:
    config = pipeline_config(kafka_config, "rnd")
    good_before = raw_record("rnd", member_update(1, 1))
    garbage = raw_record("rnd", b"\x00\xffnot json at all\x1f")
    foreign: Record = (b"rnd", b'{"hello": "world"}', [("traceparent", b"00-abc-01")])
    trailing_comma = raw_record("rnd", member_update(2, 1)[:-1] + b",}")
    unknown_source = raw_record("gone", member_update(3, 1))
    unknown_source = (b"rnd", unknown_source[1], unknown_source[2])  # same partition as the others
    good_after = raw_record("rnd", member_update(1, 2))
    records = [good_before, garbage, foreign, trailing_comma, unknown_source, good_after]
    await ensure_topics(kafka_config, hookbus_topics(config))
    offsets = await produce(kafka_config, kafka_config.raw_topic, records)

    async with running_normalizer(config):
        events = events_of(await read_topic(kafka_config, kafka_config.events_topic, 2))
        letters = await read_topic(kafka_config, kafka_config.dlq_topic, 4)

    assert [event.id for event in events] == ["rnd:evt-1-1", "rnd:evt-1-2"]
    expected = {
        offsets[1]: (garbage, "map", "unparseable_body"),
        offsets[2]: (foreign, "read", "not_a_raw_event"),
        offsets[3]: (trailing_comma, "map", "unparseable_body"),
        offsets[4]: (unknown_source, "route", "unknown_source"),
    }
    raw_partition = None
    for record in letters:
        letter = DeadLetter.from_kafka(record.key, record.headers, record.value)
        (key, value, headers), stage, reason = expected.pop(letter.origin.offset)
        assert (letter.failure.stage, letter.failure.reason) == (stage, reason)
        assert (record.key, record.value) == (key, value)
        assert list(record.headers[: len(headers)]) == headers
        assert list(letter.headers) == headers
        assert letter.origin.topic == kafka_config.raw_topic
        assert letter.dead_lettered_at is not None
        assert letter.dead_lettered_at <= time.time()
        assert letter.failure.detail
        assert b"world" not in letter.failure.detail.encode()
        assert raw_partition in (None, letter.origin.partition)
        raw_partition = letter.origin.partition
    assert expected == {}


def test_the_normalizer_runs_on_the_raw_topic_and_gives_a_record_up_after_max_attempts() -> None:
    config = pipeline_config(KafkaConfig(), "rnd", normalizer={"max_attempts": 2, "batch_size": 7})

    settings = stage_settings(config, parse_settings(config.normalizer))

    assert (settings.topic, settings.dead_letter_topic) == (config.kafka.raw_topic, config.kafka.dlq_topic)
    assert (settings.max_attempts, settings.batch_size, settings.fetch_wait_seconds) == (2, 7, 0.05)
    # A batch is what one fetch returns: waiting for it to fill would only delay the events.
    assert settings.batch_timeout_seconds == 0
    assert {spec.name for spec in settings.topics} == {spec.name for spec in hookbus_topics(config)}
    assert not settings.keep_trying_to_start


def test_an_unexpected_exception_of_the_normalizer_fails_that_record_only() -> None:
    class Exploding:
        calls = 0

        def normalize(self, raw: RawEvent) -> CloudEvent:
            self.calls += 1
            raise ZeroDivisionError(raw.body.decode())

    mapper = Exploding()
    _, value, headers = raw_record("rnd", b'{"iban": "NL91ABNA0417164300"}')

    failure = map_record(mapper, headers, value, mode=Mode.BINARY, tries=3)

    assert failure == Failure(stage="normalize", reason="internal_error", detail="ZeroDivisionError")
    assert mapper.calls == 3


# Poison on raw partition 0, then a good record behind it, and good records on the other partitions.
POISON_PARTITIONS = [0, 0, 1, 2]
GOOD_AROUND_POISON = {"rnd:evt-1-2", "rnd:evt-2-1", "rnd:evt-3-1"}
DELIVERED_WITHIN_SECONDS = 10.0


def around_poison(poison: Record) -> list[Record]:
    """``poison``, then good records on its partition and the others (see :data:`POISON_PARTITIONS`)."""
    return [poison, raw_record("rnd", member_update(1, 2)), raw_record("rnd", member_update(2, 1)),
            raw_record("rnd", member_update(3, 1))]  # fmt: skip


async def poison_and_good_records_through_the_normalizer(
    config: HookbusConfig, poison: Record
) -> tuple[list[CloudEvent], list[DeadLetter], float]:
    """Run the normalizer over :func:`around_poison`: the events, the dead letters, and how long
    the good events took to arrive."""
    kafka = config.kafka
    await ensure_topics(kafka, hookbus_topics(config))
    async with running_normalizer(config):
        started = time.monotonic()
        await produce(kafka, kafka.raw_topic, around_poison(poison), partitions=POISON_PARTITIONS)
        events = await read_events_until(kafka, GOOD_AROUND_POISON)
        took = time.monotonic() - started
        # Everything is committed, so a restart does not meet the poison again; and its dead
        # letter, if any, was acknowledged before that.
        await _until_committed(kafka, config.normalizer["group_id"], 4)
    records = await read_topic(kafka, kafka.dlq_topic, await topic_size(kafka, kafka.dlq_topic))
    letters = [DeadLetter.from_kafka(record.key, record.headers, record.value) for record in records]
    return events, letters, took


async def _until_committed(kafka: KafkaConfig, group_id: str, total: int) -> None:
    deadline = time.monotonic() + READ_DEADLINE_SECONDS
    while await committed_offsets(kafka, group_id) < total:
        assert time.monotonic() < deadline, "the normalizer did not commit past the poison"
        await asyncio.sleep(0.2)


def encoding_fails_for(monkeypatch: pytest.MonkeyPatch, event_id: str) -> None:
    """Make encoding the event ``event_id`` raise ``ValueError`` (quoting its data), as a bug would."""
    encode = CloudEvent.to_kafka

    def to_kafka(self: CloudEvent, mode: Mode = Mode.BINARY) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        if self.id == event_id:
            raise ValueError(f"cannot encode {self.data}")
        return encode(self, mode)

    monkeypatch.setattr(CloudEvent, "to_kafka", to_kafka)


async def test_an_event_that_cannot_be_encoded_is_dead_lettered_and_every_partition_flows(
    kafka_config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding_fails_for(monkeypatch, "rnd:evt-9-1")
    config = pipeline_config(kafka_config, "rnd", normalizer={"max_attempts": 2})
    poison = raw_record("rnd", member_update(9, 1, extra={"iban": "NL91ABNA0417164300"}))

    events, letters, took = await poison_and_good_records_through_the_normalizer(config, poison)

    assert {event.id for event in events} == GOOD_AROUND_POISON
    [letter] = letters
    assert letter.failure == Failure("normalize", "internal_error", "ValueError")
    assert (letter.origin.partition, letter.origin.offset, letter.value) == (0, 0, poison[1])
    assert took < DELIVERED_WITHIN_SECONDS


def with_generic_source(config: HookbusConfig) -> HookbusConfig:
    """``config`` and a generic source ``crm`` whose event id is the body's ``event_id``."""
    crm = {"name": "crm", "provider": "generic", "api_key": "k", "mapping": {"id": "/event_id"}}
    added = parse_config({"sources": [crm]}, path="test.yaml").sources
    return dataclasses.replace(config, sources=(*config.sources, *added))


def deeply_nested_record(levels: int) -> Record:
    """A raw record of the ``crm`` source (:func:`with_generic_source`), event id ``crm:deep-1``,
    whose body nests arrays ``levels`` deep."""
    body = b'{"event_id": "deep-1", "payload": ' + b"[" * levels + b"]" * levels + b"}"
    raw = RawEvent(source="crm", provider="generic", ingest_id="ingest-deep", received_at=time.time(), body=body,
                   content_type="application/json", headers={})  # fmt: skip
    return raw.kafka_key, raw.body, raw.kafka_headers()


async def test_a_body_nested_300_levels_deep_maps_or_is_dead_lettered_and_every_partition_flows(
    kafka_config: KafkaConfig,
) -> None:
    config = with_generic_source(pipeline_config(kafka_config, "rnd"))
    deep = deeply_nested_record(300)

    events, letters, took = await poison_and_good_records_through_the_normalizer(config, deep)

    mapped = [event for event in events if event.id == "crm:deep-1"]
    # Whether it maps is the mapping's business (it may refuse it, or the encoder fail on it):
    # either it maps, or it is dead-lettered with a stage and a reason - never a stall.
    if mapped:
        assert letters == []
    else:
        [letter] = letters
        assert letter.failure.stage
        assert letter.failure.reason
        assert letter.value == deep[1]
    assert {event.id for event in events} >= GOOD_AROUND_POISON
    assert took < DELIVERED_WITHIN_SECONDS


# --- no gaps across restarts --------------------------------------------------------------


async def _restart_mid_stream(kafka_config: KafkaConfig, *, crash: bool) -> None:
    config = pipeline_config(kafka_config, "rnd", normalizer={"batch_size": 10})
    total = 300
    bodies = [member_update(index % 7, index // 7) for index in range(total)]
    expected_ids = {f"rnd:evt-{index % 7}-{index // 7}" for index in range(total)}
    await ensure_topics(kafka_config, hookbus_topics(config))
    await produce(kafka_config, kafka_config.raw_topic, [raw_record("rnd", body) for body in bodies])

    async with running_normalizer(config) as first:
        await read_topic(kafka_config, kafka_config.events_topic, 30)
        if crash:
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await first
    async with running_normalizer(config):
        events = await read_events_until(kafka_config, expected_ids)

    # Duplicates are allowed after a stop mid-stream (the same event, the same id); gaps are not.
    assert {event.id for event in events} == expected_ids
    by_id: dict[str, CloudEvent] = {}
    for event in events:
        assert by_id.setdefault(event.id, event).data == event.data


async def test_stopping_mid_stream_and_starting_again_leaves_no_gap(kafka_config: KafkaConfig) -> None:
    await _restart_mid_stream(kafka_config, crash=False)


async def test_crashing_mid_stream_and_starting_again_leaves_no_gap(kafka_config: KafkaConfig) -> None:
    await _restart_mid_stream(kafka_config, crash=True)


# --- the command --------------------------------------------------------------------------


async def test_the_command_commits_and_exits_0_on_sigterm(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    config = pipeline_config(kafka_config, "rnd")
    group_id = config.normalizer["group_id"]
    config_file = write_config_file(tmp_path, config)
    await ensure_topics(kafka_config, hookbus_topics(config))
    await produce(kafka_config, kafka_config.raw_topic, [raw_record("rnd", member_update(3, n)) for n in range(5)])

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hookbus", "normalizer", "--config", str(config_file), stderr=asyncio.subprocess.PIPE
    )
    try:
        await read_topic(kafka_config, kafka_config.events_topic, 5)
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), READ_DEADLINE_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    logs = [orjson.loads(line) for line in (await process.stderr.read()).splitlines() if line.startswith(b"{")]

    assert exit_code == 0
    [stopped] = [entry for entry in logs if entry["event"] == "normalizer_stopped"]
    assert stopped["events_by_type"] == {"officernd.member.updated": 5}
    assert stopped["level"] == "info"
    assert await committed_offsets(kafka_config, group_id) == await topic_size(kafka_config, kafka_config.raw_topic)


async def committed_offsets(kafka: KafkaConfig, group_id: str) -> int:
    """The raw-topic offsets ``group_id`` committed, summed over the partitions."""
    consumer = AIOKafkaConsumer(**client_options(kafka), group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        return sum([await consumer.committed(tp) or 0 for tp in partitions_of(kafka, kafka.raw_topic)])
    finally:
        await consumer.stop()


async def test_a_bad_source_mapping_stops_the_start_before_anything_connects() -> None:
    unreachable = KafkaConfig(bootstrap_servers="127.0.0.1:1")
    bad_generic = {"name": "crm", "provider": "generic", "api_key": "k", "mapping": {"id": "event_id"}}
    # The file's reader refuses it already; a source built by other code is refused by the normalizer.
    with pytest.raises(ConfigError, match=r"mapping\.id"):
        parse_config({"sources": [bad_generic]}, path="test.yaml")
    source = SourceConfig(name="crm", provider="generic", options={"mapping": {"id": "event_id"}})
    config = dataclasses.replace(parse_config({}, path="test.yaml"), kafka=unreachable, sources=(source,))

    with pytest.raises(ConfigError) as caught:
        await run(config, stop=asyncio.Event())

    assert caught.value.source == "crm"
    assert caught.value.key is not None
    assert caught.value.key.startswith("mapping")


async def test_bad_settings_stop_the_start_with_the_key() -> None:
    config = parse_config({"normalizer": {"mode": "avro"}}, path="test.yaml")

    with pytest.raises(ConfigError) as caught:
        await run(config, stop=asyncio.Event())

    assert (caught.value.file, caught.value.key) == ("test.yaml", "normalizer.mode")


async def test_the_command_exits_1_on_unsafe_topics_outside_development_mode(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    config = pipeline_config(dataclasses.replace(kafka_config, development_mode=False), "rnd")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookbus",
        "normalizer",
        "--config",
        str(write_config_file(tmp_path, config)),
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(process.communicate(), READ_DEADLINE_SECONDS)
    logs = [orjson.loads(line) for line in errors.splitlines() if line.startswith(b"{")]

    assert process.returncode == 1
    [refusal] = [entry for entry in logs if entry["event"] == "unsafe_topics"]
    assert refusal["reason"] == "unsafe_topics"
    assert f"{kafka_config.raw_topic}: replication_unsafe: one replica" in " ".join(refusal["problems"])
