"""The stage runtime against a real broker: what every stage gets, shown with a tiny processor and a fake sink.

A processor that copies records (a ``poison`` one fails) and sinks that answer as a test
wants stand in for the normalizer and the real sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from hookbus.cloudevent import CloudEvent
from hookbus.config import KafkaConfig
from hookbus.delivery import DeliveryReport, Outcome
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import MIN_RECORD_BYTES, TopicSpec, UnsafeTopicsError
from hookbus.logging import get_logger
from hookbus.ops_server import DESTINATION_UNREACHABLE
from hookbus.sink import BatchResult, Rejection, Sink, SinkUnavailableError
from hookbus.stage.backoff import Backoff, is_transient
from hookbus.stage.deadletter import Failure
from hookbus.stage.metrics import RETRY_CRASHED, RETRY_REQUESTED
from hookbus.stage.output import OutputStage
from hookbus.stage.processor import Output, ProcessorStage
from hookbus.stage.record import ConsumedRecord
from hookbus.stage.runtime import BatchHandler, Outgoing, StageRuntime, StageSettings
from normalizer.deadletter import DeadLetter
from tests.normalizer.test_service import produce, read_topic, topic_size
from tests.sinks.helpers import committed_offsets, event, eventually, header, publish
from tests.support import running_service

PreparedT = TypeVar("PreparedT")
GROUP_SUFFIX = "-stage"


# --- backoff ------------------------------------------------------------------------------


def test_the_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(0.1, 1.0, _random=random.Random(7))

    delays = [backoff.next_delay() for _ in range(8)]

    for attempt, delay in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 1.0


def test_the_backoff_waits_at_least_what_the_destination_asked_even_beyond_the_cap() -> None:
    backoff = Backoff(0.1, 1.0)

    assert backoff.next_delay(at_least=5.0) == 5.0
    assert backoff.next_delay(at_least=0.0) <= 0.2


def test_a_zero_initial_delay_does_not_spin() -> None:
    assert Backoff(0.0, 0.0).next_delay() > 0


def test_transient_errors_are_those_that_may_go_away() -> None:
    assert is_transient(KafkaConnectionError())
    assert is_transient(KafkaUnavailableError("the broker is down"))
    assert not is_transient(MessageSizeTooLargeError())
    assert not is_transient(ValueError("not Kafka"))


# --- running a stage ------------------------------------------------------------------------


def _settings(kafka: KafkaConfig, topic: str, *extra_topics: TopicSpec, **overrides: Any) -> StageSettings:
    specs = [TopicSpec(name, kafka.topic_partitions, kafka.replication_factor) for name in (topic, kafka.dlq_topic)]
    values: dict[str, Any] = {
        "topic": topic,
        "group_id": kafka.client_id + GROUP_SUFFIX,
        "dead_letter_topic": kafka.dlq_topic,
        "topics": [*extra_topics, *specs],
        "batch_size": 50,
        "batch_timeout_seconds": 0.3,
        "retry_initial_seconds": 0.02,
        "retry_max_seconds": 0.2,
        **overrides,
    }
    return StageSettings(**values)


def running(
    kafka: KafkaConfig, settings: StageSettings, handler: BatchHandler[PreparedT]
) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """The stage running until the block ends (then stopped, SIGTERM-style)."""

    async def run(stop: asyncio.Event, ready: asyncio.Event) -> None:
        log = get_logger(service="test")
        runtime = StageRuntime(kafka, settings, handler, max_record_bytes=MIN_RECORD_BYTES, log=log, stop=stop)
        async with runtime.started() as started:
            if started:
                ready.set()
                await runtime.consume()

    return running_service(run, "the stage")


@dataclass
class Copier:
    """Copies each record to ``topic``; a record whose value is ``poison`` fails, and one whose
    value is ``explode`` raises ``error`` (with a message quoting the body), as a bug would."""

    topic: str
    published_labels: list[str] = field(default_factory=list)
    error: type[Exception] = RecursionError
    explosions: int = 0
    stage: str = "copy"

    def process(self, record: ConsumedRecord) -> Sequence[Output] | Failure:
        if record.value == b"poison":
            return Failure("copy", "poisoned", "the record says so")
        if record.value == b"explode":
            self.explosions += 1
            raise self.error("the body says iban NL91ABNA0417164300")
        return [Output(self.topic, record.key, record.value, list(record.headers), label="copied")]

    def published(self, outgoing: Sequence[Outgoing]) -> None:
        self.published_labels.extend(item.label for item in outgoing)


def _record(key: str, value: bytes) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return key.encode(), value, [("x-trace", key.encode())]


async def test_a_processor_publishes_in_order_dead_letters_failures_and_commits_all(
    kafka_config: KafkaConfig,
) -> None:
    out = f"{kafka_config.raw_topic}.out"
    copier = Copier(out)
    settings = _settings(
        kafka_config, kafka_config.raw_topic, TopicSpec(out, 3, 1), dead_letter_extra={"copier": "one"}
    )
    records = [_record(f"k{number % 3}", f"{number}".encode()) for number in range(60)]
    records.insert(17, _record("k1", b"poison"))

    async with running(kafka_config, settings, ProcessorStage(copier)):
        offsets = await produce(kafka_config, kafka_config.raw_topic, records)
        copies = await read_topic(kafka_config, out, 60)
        [letter] = await read_topic(kafka_config, kafka_config.dlq_topic, 1)
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.raw_topic, 61))

    by_key: dict[bytes | None, list[int]] = {}
    for copy in copies:
        by_key.setdefault(copy.key, []).append(int(copy.value))
        assert header(copy, "x-trace") == copy.key.decode()
    assert by_key == {f"k{key}".encode(): list(range(key, 60, 3)) for key in range(3)}
    read_back = DeadLetter.from_kafka(letter.key, letter.headers, letter.value)
    assert read_back.failure == Failure("copy", "poisoned", "the record says so")
    assert read_back.origin.offset == offsets[17]
    assert (letter.key, letter.value, header(letter, "x-trace")) == (b"k1", b"poison", "k1")
    assert header(letter, "hookbus-dlq-copier") == "one"
    assert sorted(copier.published_labels) == ["copied"] * 60 + ["poisoned"]


async def _committed_is(kafka: KafkaConfig, topic: str, total: int) -> bool:
    return await committed_offsets(kafka, kafka.client_id + GROUP_SUFFIX, topic) == total


async def test_an_output_kafka_refuses_for_good_is_dead_lettered_after_the_tries(kafka_config: KafkaConfig) -> None:
    out = f"{kafka_config.raw_topic}.out"
    # An output topic that takes small records only: the large one is refused every time.
    small_only = TopicSpec(out, kafka_config.topic_partitions, 1, {"max.message.bytes": "4096"})
    settings = _settings(kafka_config, kafka_config.raw_topic, small_only, max_attempts=2)
    large = os.urandom(8192).hex().encode()
    records = [_record("k", b"before"), _record("k", large), _record("k", b"after")]

    async with running(kafka_config, settings, ProcessorStage(Copier(out))):
        offsets = await produce(kafka_config, kafka_config.raw_topic, records)
        [letter_record] = await read_topic(kafka_config, kafka_config.dlq_topic, 1)
        copies = await read_topic(kafka_config, out, 2)

    letter = DeadLetter.from_kafka(letter_record.key, letter_record.headers, letter_record.value)
    assert (letter.failure.stage, letter.failure.reason) == ("publish", "publish_failed")
    assert letter.failure.detail == "MessageSizeTooLargeError"
    assert letter.origin.offset == offsets[1]
    assert letter_record.value == large
    # The records around it got through, in order (a retry may repeat one).
    values = [copy.value for copy in copies]
    assert values[0] == b"before"
    assert b"after" in values


# Poison on partition 0, then a good record behind it, and good records on the other partitions.
_POISON_PARTITIONS = [0, 0, 1, 2]
_SECRET = "NL91ABNA0417164300"


@pytest.mark.parametrize("error", [RecursionError, ValueError])
async def test_a_record_the_processor_raises_on_is_dead_lettered_after_the_tries_and_the_rest_flows(
    kafka_config: KafkaConfig, error: type[Exception]
) -> None:
    out = f"{kafka_config.raw_topic}.out"
    copier = Copier(out, error=error)
    settings = _settings(kafka_config, kafka_config.raw_topic, TopicSpec(out, 3, 1), max_attempts=2)
    records = [_record("k", b"explode"), _record("k", b"after"), _record("k", b"one"), _record("k", b"two")]

    async with running(kafka_config, settings, ProcessorStage(copier)):
        offsets = await produce(kafka_config, kafka_config.raw_topic, records, partitions=_POISON_PARTITIONS)
        copies = await read_topic(kafka_config, out, 3)
        [letter_record] = await read_topic(kafka_config, kafka_config.dlq_topic, 1)
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.raw_topic, 4), timeout=10)

    assert sorted(copy.value for copy in copies) == [b"after", b"one", b"two"]
    letter = DeadLetter.from_kafka(letter_record.key, letter_record.headers, letter_record.value)
    assert letter.failure == Failure("copy", "internal_error", error.__name__)
    assert (letter.origin.partition, letter.origin.offset) == (0, offsets[0])
    assert letter_record.value == b"explode"
    assert _SECRET.encode() not in b"".join(value for _, value in letter_record.headers)
    assert copier.explosions == 2


async def test_a_second_member_of_the_group_takes_partitions_without_a_gap(kafka_config: KafkaConfig) -> None:
    out = f"{kafka_config.raw_topic}.out"
    settings = _settings(kafka_config, kafka_config.raw_topic, TopicSpec(out, 3, 1), batch_size=5)
    total = 240
    records = [_record(f"k{number % 12}", f"{number}".encode()) for number in range(total)]

    async with running(kafka_config, settings, ProcessorStage(Copier(out))):
        await produce(kafka_config, kafka_config.raw_topic, records[: total // 2])
        await read_topic(kafka_config, out, 20)
        # The second member joins: the first gives partitions up mid-stream.
        async with running(kafka_config, settings, ProcessorStage(Copier(out))):
            await produce(kafka_config, kafka_config.raw_topic, records[total // 2 :])
            assert await eventually(lambda: _committed_is(kafka_config, kafka_config.raw_topic, total), timeout=60)

    copies = await read_topic(kafka_config, out, total)
    assert {int(copy.value) for copy in copies} == set(range(total))


# --- output stages --------------------------------------------------------------------------


@dataclass
class ScriptedSink:
    """A sink whose answer to each write is the test's; it notes the ids of every batch."""

    answer: Callable[[Sequence[CloudEvent]], BatchResult]
    batches: list[list[str]] = field(default_factory=list)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        self.batches.append([item.id for item in batch])
        return self.answer(batch)


def _output(sink: Sink, *, deliveries_topic: str | None = None) -> OutputStage:
    return OutputStage(lambda _record_of: sink, lambda _event: True, name="test", deliveries_topic=deliveries_topic)


def _deliveries_spec(kafka: KafkaConfig) -> TopicSpec:
    return TopicSpec(kafka.deliveries_topic, kafka.topic_partitions, kafka.replication_factor)


def _copies_written(batch: Sequence[CloudEvent]) -> BatchResult:
    return BatchResult(written=[dataclasses.replace(item) for item in batch])


async def test_results_are_matched_by_event_id_so_a_sink_may_return_copies(kafka_config: KafkaConfig) -> None:
    sink = ScriptedSink(_copies_written)
    events = [event(number) for number in range(20)]
    await publish(kafka_config, events)

    async with running(kafka_config, _settings(kafka_config, kafka_config.events_topic), _output(sink)):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, len(events)))

    written = [event_id for batch in sink.batches for event_id in batch]
    assert sorted(written) == sorted(item.id for item in events)


async def test_records_sharing_an_event_id_are_handed_over_once_and_share_its_outcome(
    kafka_config: KafkaConfig,
) -> None:
    refused, fine = event(1, key="member-1"), event(2, key="member-1")
    flaky = event(3, key="member-1")
    tries: dict[str, int] = {}

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        for item in batch:
            tries[item.id] = tries.get(item.id, 0) + 1
        retry = [dataclasses.replace(item) for item in batch if item.id == flaky.id and tries[item.id] == 1]
        rejected = [Rejection(dataclasses.replace(item), "refused", "no") for item in batch if item.id == refused.id]
        written = [item for item in batch if item.id == fine.id or (item.id == flaky.id and not retry)]
        return BatchResult(written=written, retry=retry, rejected=rejected)

    sink = ScriptedSink(answer)
    # Each id twice, as a redelivery or a replay would put them: one batch holds them all.
    await publish(kafka_config, [refused, fine, flaky, refused, flaky, fine])
    settings = _settings(kafka_config, kafka_config.events_topic, batch_timeout_seconds=1.0)

    async with running(kafka_config, settings, _output(sink)):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 6))
        letters = await read_topic(kafka_config, kafka_config.dlq_topic, 2)

    assert sink.batches == [[refused.id, fine.id, flaky.id], [flaky.id]]
    assert [header(letter, "ce_id") for letter in letters] == [refused.id, refused.id]
    assert {header(letter, "hookbus-dlq-offset") for letter in letters} == {"0", "3"}
    assert {header(letter, "hookbus-dlq-stage") for letter in letters} == {"write"}


async def test_every_outcome_is_reported_once_per_event_id_before_the_batch_is_committed(
    kafka_config: KafkaConfig,
) -> None:
    refused, fine, flaky = event(1, key="member-1"), event(2, key="member-1"), event(3, key="member-1")
    tries: dict[str, int] = {}

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        for item in batch:
            tries[item.id] = tries.get(item.id, 0) + 1
        retry = [item for item in batch if item.id == flaky.id and tries[item.id] == 1]
        rejected = [Rejection(item, "refused", "the destination said no") for item in batch if item.id == refused.id]
        written = [item for item in batch if item.id == fine.id or (item.id == flaky.id and not retry)]
        return BatchResult(written=written, retry=retry, rejected=rejected)

    # The fine one twice, as a redelivery would put it: one report for its id.
    await publish(kafka_config, [refused, fine, flaky, fine])
    settings = _settings(
        kafka_config, kafka_config.events_topic, _deliveries_spec(kafka_config), batch_timeout_seconds=1.0
    )
    stage = _output(ScriptedSink(answer), deliveries_topic=kafka_config.deliveries_topic)

    async with running(kafka_config, settings, stage):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 4))
        # Committed only after its final reports were acknowledged: they are all there now.
        records = await read_topic(kafka_config, kafka_config.deliveries_topic, 4)

    reports = sorted((DeliveryReport.from_json(record.value) for record in records), key=lambda item: item.time)
    assert [(item.event_id, item.outcome, item.attempt, item.reason) for item in reports] == [
        (fine.id, Outcome.WRITTEN, 1, None),
        (refused.id, Outcome.DEAD_LETTERED, 1, "refused"),
        (flaky.id, Outcome.RETRY, 1, RETRY_REQUESTED),
        (flaky.id, Outcome.WRITTEN, 2, None),
    ]
    assert {record.key for record in records} == {item.id.encode() for item in (refused, fine, flaky)}
    dead = next(item for item in reports if item.outcome is Outcome.DEAD_LETTERED)
    assert (dead.sink, dead.detail) == ("test", "the destination said no")
    assert dead.dead_letter_topic == kafka_config.dlq_topic
    assert (dead.type, dead.subject) == (refused.type, refused.subject)
    assert await topic_size(kafka_config, kafka_config.deliveries_topic) == 4


async def test_a_crash_is_reported_as_a_retry_with_the_exception_class_then_its_dead_letter(
    kafka_config: KafkaConfig,
) -> None:
    poison = event(1)
    settings = _settings(kafka_config, kafka_config.events_topic, _deliveries_spec(kafka_config), max_attempts=2)
    stage = _output(ScriptedSink(_crashing_on(poison.id, KeyError)), deliveries_topic=kafka_config.deliveries_topic)
    await publish(kafka_config, [poison])

    async with running(kafka_config, settings, stage):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 1))
        records = await read_topic(kafka_config, kafka_config.deliveries_topic, 2)

    reports = sorted((DeliveryReport.from_json(record.value) for record in records), key=lambda item: item.time)
    assert [(item.outcome, item.attempt, item.reason, item.detail) for item in reports] == [
        (Outcome.RETRY, 1, RETRY_CRASHED, "KeyError"),
        (Outcome.DEAD_LETTERED, 2, "write_crashed", "KeyError"),
    ]


async def test_a_stage_without_a_deliveries_topic_reports_nothing(kafka_config: KafkaConfig) -> None:
    settings = _settings(kafka_config, kafka_config.events_topic, _deliveries_spec(kafka_config))
    await publish(kafka_config, [event(1), event(2)])

    async with running(kafka_config, settings, _output(ScriptedSink(BatchResult.all_written))):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 2))

    assert await topic_size(kafka_config, kafka_config.deliveries_topic) == 0


async def test_a_retry_waits_at_least_what_the_sink_asked(kafka_config: KafkaConfig) -> None:
    loop = asyncio.get_running_loop()
    moments: list[float] = []

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        moments.append(loop.time())
        if len(moments) == 1:
            return BatchResult(retry=batch, retry_after=0.8)
        return BatchResult.all_written(batch)

    await publish(kafka_config, [event(1)])
    async with running(kafka_config, _settings(kafka_config, kafka_config.events_topic), _output(ScriptedSink(answer))):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 1))

    assert len(moments) == 2
    assert moments[1] - moments[0] >= 0.8


async def test_stopping_while_a_batch_waits_to_retry_abandons_it_uncommitted(kafka_config: KafkaConfig) -> None:
    sink = ScriptedSink(lambda batch: BatchResult(retry=batch))
    await publish(kafka_config, [event(1), event(2)])
    settings = _settings(kafka_config, kafka_config.events_topic, retry_initial_seconds=30, retry_max_seconds=30)

    loop = asyncio.get_running_loop()
    async with running(kafka_config, settings, _output(sink)):
        assert await eventually(lambda: _written_once(sink))
        stopping = loop.time()
    assert loop.time() - stopping < 10
    assert await committed_offsets(kafka_config, kafka_config.client_id + GROUP_SUFFIX, kafka_config.events_topic) == 0


async def _written_once(sink: ScriptedSink) -> bool:
    return bool(sink.batches)


async def test_a_batch_waiting_to_retry_does_not_hold_up_a_rebalance(kafka_config: KafkaConfig) -> None:
    down = ScriptedSink(lambda batch: BatchResult(retry=batch))
    up = ScriptedSink(BatchResult.all_written)
    events = [event(number, key=f"member-{number}") for number in range(30)]
    await publish(kafka_config, events)
    settings = _settings(kafka_config, kafka_config.events_topic, retry_initial_seconds=30, retry_max_seconds=30)

    async with running(kafka_config, settings, _output(down)):
        assert await eventually(lambda: _written_once(down))
        # The first member's batch waits 30 s to retry, again and again: the second member
        # gets its partitions anyway, because the waiting batch is abandoned to the rebalance.
        async with running(kafka_config, settings, _output(up)):
            assert await eventually(lambda: _written_once(up), timeout=25)

    written = {event_id for batch in up.batches for event_id in batch}
    assert written
    assert written < {item.id for item in events}


# --- what a sink or the decoding raises on one event --------------------------------------


def _crashing_on(poison_id: str, error: type[Exception]) -> Callable[[Sequence[CloudEvent]], BatchResult]:
    """A sink's answer that raises ``error`` (quoting the body) for any batch holding ``poison_id``."""

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        if any(item.id == poison_id for item in batch):
            raise error(f"cannot encode {_SECRET}")
        return BatchResult.all_written(batch)

    return answer


@pytest.mark.parametrize("error", [RecursionError, ValueError])
async def test_a_sink_raising_for_one_event_dead_letters_it_alone_and_writes_its_batch_mates(
    kafka_config: KafkaConfig, error: type[Exception]
) -> None:
    events = [event(number, key="member-1") for number in range(8)]
    poison = events[3]
    sink = ScriptedSink(_crashing_on(poison.id, error))
    await publish(kafka_config, events)
    settings = _settings(kafka_config, kafka_config.events_topic, batch_timeout_seconds=1.0, max_attempts=2)

    async with running(kafka_config, settings, _output(sink)):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 8), timeout=15)
        [letter] = await read_topic(kafka_config, kafka_config.dlq_topic, 1)

    written = {event_id for batch in sink.batches for event_id in batch if event_id != poison.id}
    assert written == {item.id for item in events} - {poison.id}
    # Twice in the batch, then twice alone: bounded, and only the poison is dead-lettered.
    assert sum(batch.count(poison.id) for batch in sink.batches) == 4
    assert header(letter, "ce_id") == poison.id
    assert (header(letter, "hookbus-dlq-stage"), header(letter, "hookbus-dlq-reason")) == ("write", "write_crashed")
    assert header(letter, "hookbus-dlq-detail") == error.__name__
    assert _SECRET.encode() not in b"".join(value for _, value in letter.headers)


@pytest.mark.parametrize("outage", [SinkUnavailableError("the database is down"), ConnectionRefusedError(111, "no")])
async def test_a_destination_outage_is_retried_past_the_tries_and_dead_letters_nothing(
    kafka_config: KafkaConfig, outage: Exception
) -> None:
    failures = 0

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        nonlocal failures
        if failures < 6:
            failures += 1
            raise outage
        return BatchResult.all_written(batch)

    sink = ScriptedSink(answer)
    await publish(kafka_config, [event(number) for number in range(5)])
    settings = _settings(kafka_config, kafka_config.events_topic, batch_timeout_seconds=1.0, max_attempts=2)

    async with running(kafka_config, settings, _output(sink)):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 5), timeout=20)

    assert failures == 6
    assert all(len(batch) == 5 for batch in sink.batches)
    assert await topic_size(kafka_config, kafka_config.dlq_topic) == 0


async def test_an_output_stage_is_not_ready_while_its_destination_is_down(kafka_config: KafkaConfig) -> None:
    down = True

    def answer(batch: Sequence[CloudEvent]) -> BatchResult:
        if down:
            raise SinkUnavailableError("the database is down")
        return BatchResult.all_written(batch)

    stage = _output(ScriptedSink(answer))
    await publish(kafka_config, [event(number) for number in range(3)])
    settings = _settings(kafka_config, kafka_config.events_topic)

    async def unreachable() -> bool:
        return await stage.not_ready_reasons() == [DESTINATION_UNREACHABLE]

    async with running(kafka_config, settings, stage):
        assert await eventually(unreachable, timeout=20)
        down = False
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 3), timeout=20)
        assert await stage.not_ready_reasons() == []


async def test_an_event_whose_decoding_raises_is_dead_lettered_and_the_rest_written(
    kafka_config: KafkaConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [event(number, key="member-1") for number in range(4)]
    poison = events[1]
    decode = CloudEvent.from_kafka

    def from_kafka(headers: Any, value: bytes | None) -> CloudEvent:
        decoded = decode(headers, value)
        if decoded.id == poison.id:
            raise RecursionError(f"deep {_SECRET}")
        return decoded

    monkeypatch.setattr(CloudEvent, "from_kafka", staticmethod(from_kafka))
    sink = ScriptedSink(BatchResult.all_written)
    await publish(kafka_config, events)

    async with running(kafka_config, _settings(kafka_config, kafka_config.events_topic), _output(sink)):
        assert await eventually(lambda: _committed_is(kafka_config, kafka_config.events_topic, 4), timeout=15)
        [letter] = await read_topic(kafka_config, kafka_config.dlq_topic, 1)

    assert {event_id for batch in sink.batches for event_id in batch} == {item.id for item in events} - {poison.id}
    assert (header(letter, "hookbus-dlq-stage"), header(letter, "hookbus-dlq-reason")) == ("read", "internal_error")
    assert header(letter, "hookbus-dlq-detail") == "RecursionError"


@pytest.mark.kafka
async def test_a_stage_refuses_to_start_on_unsafe_topics_outside_development_mode(kafka_config: KafkaConfig) -> None:
    strict = dataclasses.replace(kafka_config, development_mode=False)
    settings = _settings(strict, strict.raw_topic, keep_trying_to_start=True)
    runtime = StageRuntime(
        strict,
        settings,
        ProcessorStage(Copier(strict.events_topic)),
        max_record_bytes=MIN_RECORD_BYTES,
        log=get_logger(service="test"),
        stop=asyncio.Event(),
    )

    with pytest.raises(UnsafeTopicsError) as refused:
        async with runtime.started():
            pytest.fail("the stage started on topics of one replica")

    assert {problem.reason for problem in refused.value.problems} == {"replication_unsafe"}
