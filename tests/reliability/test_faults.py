"""No event answered 2xx is lost, and none is stored twice, whatever fails while events flow.

Each scenario runs the pipeline as real processes (``hookbus gateway``, ``hookbus normalizer``,
``hookbus sink pg``) on topics of its own, on a Kafka broker this module starts (it is killed
in one scenario; the shared broker never is), into a database of its own. A sender posts a
steady stream of signed events from four providers while the fault is injected, the test
waits (bounded) for the pipeline to drain, and then accounts for every event: see
:func:`tests.reliability.harness.account`. The numbers go into docs/reliability.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.guarantees import check
from tests.reliability.harness import (
    FULL_MODE,
    NORMALIZER_STARTED,
    OFFICERND,
    SINK_STARTED,
    SOURCES,
    Pipeline,
    Running,
    StreamSender,
    Tally,
    account,
    fresh_topics,
    pipeline_document,
    wait_drained,
)
from tests.reliability.report import Finding
from tests.support import free_port
from tools.localkafka import QUICK_START_JVM_OPTIONS, LocalKafka
from tools.localpg import LocalPostgres

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

EVENTS = 3000 if FULL_MODE else 400
RATE_PER_SECOND = 100.0
DRAIN_TIMEOUT_SECONDS = 240.0 if FULL_MODE else 90.0
# The fault strikes once this share of the stream has been answered, so events flow before and after it.
FAULT_AT = EVENTS // 3
# Longer than the gateway's ack deadline (1.5 s in the scenario configuration).
BROKER_OUTAGE_SECONDS = 3.0
PAUSE_BEFORE_RESTART_SECONDS = 1.0

Fault = Callable[[Running, StreamSender], Awaitable[None]]
MakePipeline = Callable[[str], Pipeline]


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafka]:
    """A broker for this module alone: scenarios kill it."""
    kafka = LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS)
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def broker(own_kafka: LocalKafka) -> LocalKafka:
    """The module's broker, running (a scenario before may have left it killed)."""
    if not own_kafka.running:
        own_kafka.restart()
    return own_kafka


@pytest.fixture
async def make_pipeline(broker: LocalKafka, tmp_path: Path) -> AsyncIterator[MakePipeline]:
    """A pipeline configuration on fresh topics of the module's broker, writing into the database ``dsn``."""
    made: list[Pipeline] = []

    def make(dsn: str) -> Pipeline:
        kafka = fresh_topics(broker.bootstrap_servers)
        port = free_port()
        document = pipeline_document(
            kafka, port=port, dsn=dsn, workdir=tmp_path, sources=[source.section() for source in SOURCES]
        )
        pipeline = Pipeline.write(tmp_path, kafka, port=port, dsn=dsn, document=document)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        await asyncio.to_thread(pipeline.stop)


async def run_scenario(pipeline: Pipeline, fault: Fault, *, normalizers: int = 1) -> Tally:
    """Start the pipeline, stream events, inject ``fault`` meanwhile, drain (bounded) and account."""
    running = await pipeline.start(normalizers=normalizers)
    sender = StreamSender(pipeline.base_url, SOURCES, count=EVENTS, rate=RATE_PER_SECOND)
    sending = asyncio.create_task(sender.run())
    try:
        await fault(running, sender)
    finally:
        deliveries = await sending
    accepted = sum(delivery.accepted for delivery in deliveries)
    await wait_drained(pipeline.dsn, accepted, timeout=DRAIN_TIMEOUT_SECONDS)
    return await account(pipeline, deliveries)


async def test_broker_killed_and_restarted(
    broker: LocalKafka, make_pipeline: MakePipeline, pg_database: str, findings: list[Finding]
) -> None:
    async def kill_broker(running: Running, sender: StreamSender) -> None:
        await sender.wait_answered(FAULT_AT)
        await asyncio.to_thread(broker.kill)
        await asyncio.sleep(BROKER_OUTAGE_SECONDS)
        await asyncio.to_thread(broker.restart)

    tally = await run_scenario(make_pipeline(pg_database), kill_broker)
    check(findings, "Kafka broker SIGKILL mid-stream, restarted", tally)
    assert set(tally.refusals) <= {"503", "connection_error"}, tally.refusals


async def test_officernd_requests_during_a_broker_outage_longer_than_the_ack_deadline_are_spooled_and_all_arrive(
    broker: LocalKafka, make_pipeline: MakePipeline, pg_database: str
) -> None:
    """OfficeRnD never retries, so its source spools by default: a request Kafka does not
    acknowledge in time is fsynced to the gateway's spool, answered 2xx, and sent on once
    the broker is back."""
    pipeline = make_pipeline(pg_database)
    await pipeline.start()
    await asyncio.to_thread(broker.kill)
    # Twice the ack deadline at least: the outage is longer than anything a producer retry hides.
    sender = StreamSender(pipeline.base_url, [OFFICERND], count=40, rate=10.0)
    deliveries = await sender.run()
    refused = [delivery.attempts for delivery in deliveries if not delivery.accepted]
    assert not refused, f"{len(refused)} of {len(deliveries)} OfficeRnD requests were refused: {refused[:3]}"
    await asyncio.to_thread(broker.restart)
    await wait_drained(pipeline.dsn, len(deliveries), timeout=DRAIN_TIMEOUT_SECONDS)
    tally = await account(pipeline, deliveries)
    assert tally.lost == 0, tally
    assert tally.rows == len(deliveries), tally


async def test_normalizer_killed_mid_batch_and_restarted(
    make_pipeline: MakePipeline, pg_database: str, findings: list[Finding]
) -> None:
    async def kill_normalizer(running: Running, sender: StreamSender) -> None:
        [normalizer] = running.normalizers
        await sender.wait_answered(FAULT_AT)
        await normalizer.kill_mid_batch()
        await asyncio.sleep(PAUSE_BEFORE_RESTART_SECONDS)
        normalizer.restart()
        await normalizer.wait_logged(NORMALIZER_STARTED)

    tally = await run_scenario(make_pipeline(pg_database), kill_normalizer)
    check(findings, "normalizer SIGKILL mid-batch, restarted", tally)


async def test_sink_killed_mid_batch_and_restarted(
    make_pipeline: MakePipeline, pg_database: str, findings: list[Finding]
) -> None:
    async def kill_sink(running: Running, sender: StreamSender) -> None:
        await sender.wait_answered(FAULT_AT)
        await running.sink.kill_mid_batch()
        await asyncio.sleep(PAUSE_BEFORE_RESTART_SECONDS)
        running.sink.restart()
        await running.sink.wait_logged(SINK_STARTED)

    tally = await run_scenario(make_pipeline(pg_database), kill_sink)
    check(findings, "PostgreSQL sink SIGKILL mid-batch, restarted", tally)


async def test_postgres_killed_and_restarted(make_pipeline: MakePipeline, findings: list[Finding]) -> None:
    postgres = LocalPostgres()
    await asyncio.to_thread(postgres.start)
    try:

        async def restart_postgres(running: Running, sender: StreamSender) -> None:
            await sender.wait_answered(FAULT_AT)
            await asyncio.to_thread(postgres.kill)
            await asyncio.sleep(PAUSE_BEFORE_RESTART_SECONDS)
            await asyncio.to_thread(postgres.restart)

        tally = await run_scenario(make_pipeline(postgres.dsn), restart_postgres)
    finally:
        await asyncio.to_thread(postgres.stop)
    check(findings, "PostgreSQL SIGKILL mid-stream, restarted (crash recovery)", tally)


async def test_gateway_terminated_under_load_and_started_again(
    make_pipeline: MakePipeline, pg_database: str, findings: list[Finding]
) -> None:
    pipeline = make_pipeline(pg_database)

    async def terminate_gateway(running: Running, sender: StreamSender) -> None:
        await sender.wait_answered(FAULT_AT)
        exit_code = await asyncio.to_thread(running.gateway.terminate)
        assert exit_code == 0, running.gateway.log_text()[-2000:]
        await pipeline.restart_gateway(running.gateway)

    tally = await run_scenario(pipeline, terminate_gateway)
    check(findings, "gateway SIGTERM under load, started again", tally)
    # Refused connections while it was down are expected (never 2xx); any answer it gave was not a 5xx.
    assert set(tally.refusals) <= {"connection_error"}, tally.refusals


async def test_one_of_two_normalizers_killed(
    make_pipeline: MakePipeline, pg_database: str, findings: list[Finding]
) -> None:
    async def kill_one_normalizer(running: Running, sender: StreamSender) -> None:
        await sender.wait_answered(FAULT_AT)
        await running.normalizers[0].kill_mid_batch()

    tally = await run_scenario(make_pipeline(pg_database), kill_one_normalizer, normalizers=2)
    check(findings, "one of two normalizers in a group SIGKILL (rebalance)", tally)
