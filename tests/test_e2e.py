"""The issue's acceptance, end to end: a provider-signed request in, one PostgreSQL row out.

The gateway (:func:`ingest.server.serve`), the normalizer (:func:`normalizer.service.run`) and
a PostgreSQL sink (:func:`sinks.runner.run_sink`) run as tasks of the test's event loop, on
topics of the real broker that belong to the test and on a fresh database. Requests are
signed as the providers sign them (:mod:`tools.send`). What a row must hold is not typed
out here: it is what :class:`normalizer.normalizer.Normalizer` makes of the same request,
captured as the gateway captures it, which is what ``hookbus normalize`` prints for it. The
gateway's clock is fixed to the moment the requests are signed, so the received time is
known too. Every wait is bounded: a test waits until the normalizer and the sink have
committed everything their topics hold, then looks at the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from hookbus.cloudevent import CloudEvent
from hookbus.config import HookbusConfig, KafkaConfig, parse_config
from hookbus.kafka import client_options
from hookbus.provider import Credentials, SignedRequest
from hookbus.request import Accept, RawRequest
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from ingest.server import serve
from normalizer.normalizer import Normalizer
from normalizer.service import run as run_normalizer
from sinks.configure import configure_sink
from sinks.runner import run_sink
from tests.reliability.harness import KafkaRecord, read_topic
from tests.sinks.helpers import committed_offsets, eventually
from tests.support import free_port
from tools.localprocess import LOOPBACK
from tools.send import example_body, sign, webhook_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

OCTOBER = "october"
OFFICERND = "officernd"
CREDENTIALS = {
    OCTOBER: Credentials(secret=b"e2e-october-secret-5d2c81f0aa"),
    OFFICERND: Credentials(secret=b"e2e-officernd-secret-93be07c41d"),
}
SINK = "pg"
TABLE = "events"
COLUMNS = ("id", "type", "source", "subject", "time", "received_at", "provider", "partition_key", "data", "event")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
DRAIN_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 30.0
INGEST_ID = "ingestid"
"""The extension naming the gateway's ingest id: it differs between two deliveries of one request."""

Service = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]


def pipeline_config(kafka: KafkaConfig, dsn: str, spool_dir: Path) -> HookbusConfig:
    """Both sources, a normalizer and the PostgreSQL sink, with consumer groups of the test's own."""
    prefix = kafka.raw_topic.removesuffix(".raw")
    document = {
        "gateway": {"host": LOOPBACK, "spool_dir": str(spool_dir)},
        "sources": [
            {"name": name, "provider": name, "secrets": [credentials.secret.decode()]}
            for name, credentials in CREDENTIALS.items()
            if credentials.secret is not None
        ],
        "normalizer": {"group_id": f"{prefix}.normalizer", "batch_timeout_ms": 50},
        "sinks": {
            SINK: {
                "type": "postgres",
                "dsn": dsn,
                "table": TABLE,
                "group_id": f"{prefix}.sink",
                "batch_timeout_seconds": 0.1,
            }
        },
    }
    return dataclasses.replace(parse_config(document, path="e2e.yaml"), kafka=kafka)


@contextlib.asynccontextmanager
async def running(what: str, service: Service) -> AsyncIterator[None]:
    """``service(stop, ready)`` as a task, ready when the block starts, stopped and awaited when it ends
    (an error it raised meanwhile is raised then)."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service(stop, ready))
    waiting = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiting}, timeout=START_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            raise AssertionError(f"the {what} stopped before it was ready")
        assert ready.is_set(), f"the {what} was not ready within {START_TIMEOUT_SECONDS:g} s"
        yield
    finally:
        waiting.cancel()
        stop.set()
        await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)


async def end_offset_total(kafka: KafkaConfig, topic: str) -> int:
    """How many records ``topic`` holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(**client_options(kafka), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, partition) for partition in range(kafka.topic_partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def header(record: KafkaRecord, name: str) -> str:
    value = record.header(name)
    assert value is not None, f"the record has no {name} header"
    return value


def moment(text: Any) -> datetime:
    return datetime.fromisoformat(str(text))


@dataclasses.dataclass(frozen=True, slots=True)
class Posted:
    status: int
    answer: dict[str, Any]

    @property
    def ingest_id(self) -> str:
        ingest_id = self.answer.get("id")
        assert isinstance(ingest_id, str), self
        return ingest_id


@dataclasses.dataclass(frozen=True, slots=True)
class Pipeline:
    """The three services of one test, and what a test asks of them."""

    config: HookbusConfig
    base_url: str
    arrival: float
    """What the gateway's clock says throughout the test, and when requests are signed."""
    http: aiohttp.ClientSession

    @property
    def kafka(self) -> KafkaConfig:
        return self.config.kafka

    def signed(self, source: str, body: bytes, credentials: Credentials | None = None) -> SignedRequest:
        return sign(source, body, credentials or CREDENTIALS[source], now=self.arrival)

    async def post(self, source: str, body: bytes, signed: SignedRequest) -> Posted:
        url = webhook_url(self.base_url, source)
        async with self.http.post(url, data=body, headers=signed.headers, params=signed.query) as response:
            return Posted(response.status, await response.json(content_type=None))

    def canonical(self, source: str, body: bytes, signed: SignedRequest) -> CloudEvent:
        """The event ``hookbus normalize`` makes of this request, arriving at the gateway's fixed time."""
        configured = self.config.source(source)
        assert configured is not None
        request = RawRequest.build(
            method="POST", body=body, client_addr=LOOPBACK, headers=signed.headers, query=signed.query
        )
        verdict = decide(configured, request, self.arrival)
        assert isinstance(verdict, Accept), verdict
        raw = capture(configured, request, verdict.auth, self.arrival, "offline", kept_headers(configured))
        return Normalizer({configured.name: configured}).normalize(raw)

    async def drained(self) -> None:
        """Wait until the normalizer has committed every raw record, then the sink every event.

        Each commits only after what it made of a record is acknowledged or written, so then
        the topics and the table hold everything the answered requests became.
        """
        for group, topic in (
            (self.config.normalizer["group_id"], self.kafka.raw_topic),
            (configure_sink(self.config, SINK).group_id, self.kafka.events_topic),
        ):
            total = await end_offset_total(self.kafka, topic)

            async def committed(group: str = group, topic: str = topic, total: int = total) -> bool:
                return await committed_offsets(self.kafka, group, topic) >= total

            assert await eventually(committed, timeout=DRAIN_TIMEOUT_SECONDS), f"{group} did not commit {topic}"

    async def rows(self) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(configure_sink(self.config, SINK).settings.dsn.value.decode("utf-8"))
        try:
            return list(await connection.fetch(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY id"))  # noqa: S608
        finally:
            await connection.close()


@pytest.fixture
async def pipeline(kafka_config: KafkaConfig, pg_database: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    config = pipeline_config(kafka_config, pg_database, tmp_path / "spool")
    arrival = time.time()
    port = free_port()

    def gateway(stop: asyncio.Event, ready: asyncio.Event) -> Coroutine[Any, Any, None]:
        return serve(config, host=LOOPBACK, port=port, stop=stop, ready=ready, clock=lambda: arrival)

    def normalizer(stop: asyncio.Event, ready: asyncio.Event) -> Coroutine[Any, Any, None]:
        return run_normalizer(config, stop=stop, ready=ready)

    def sink(stop: asyncio.Event, ready: asyncio.Event) -> Coroutine[Any, Any, None]:
        return run_sink(config, SINK, stop=stop, ready=ready)

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with (
        running("gateway", gateway),
        running("normalizer", normalizer),
        running("sink", sink),
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        yield Pipeline(config, f"http://{LOOPBACK}:{port}", arrival, http)


async def test_a_signed_october_request_becomes_exactly_one_row_with_the_canonical_fields(
    pipeline: Pipeline,
) -> None:
    body = example_body(OCTOBER, "update_request", now=pipeline.arrival)
    signed = pipeline.signed(OCTOBER, body)
    expected = pipeline.canonical(OCTOBER, body, signed)

    posted = await pipeline.post(OCTOBER, body, signed)
    assert posted.status == 200, posted
    await pipeline.drained()

    [row] = await pipeline.rows()
    assert (row["type"], row["source"]) == ("october.request.updated", "/webhooks/october")
    assert (row["id"], row["type"], row["source"], row["subject"]) == (
        expected.id,
        expected.type,
        expected.source,
        expected.subject,
    )
    assert (row["provider"], row["partition_key"]) == (expected.extensions["provider"], expected.partition_key)
    assert row["time"] == moment(expected.time)
    assert row["received_at"] == moment(expected.extensions["receivedtime"])
    assert orjson.loads(row["data"]) == expected.data
    stored = orjson.loads(row["event"])
    assert stored[INGEST_ID] == posted.ingest_id
    # The whole event is the offline one; only the gateway's ingest id differs from it.
    assert {**stored, INGEST_ID: None} == {**expected.to_dict(), INGEST_ID: None}


async def test_the_same_request_delivered_twice_is_answered_twice_and_stays_one_row(pipeline: Pipeline) -> None:
    body = example_body(OCTOBER, "update_request", now=pipeline.arrival)
    signed = pipeline.signed(OCTOBER, body)
    expected = pipeline.canonical(OCTOBER, body, signed)

    first = await pipeline.post(OCTOBER, body, signed)
    second = await pipeline.post(OCTOBER, body, signed)
    assert (first.status, second.status) == (200, 200), (first, second)
    assert first.ingest_id != second.ingest_id
    await pipeline.drained()

    # Both deliveries went all the way through, as one event id...
    events = await read_topic(pipeline.kafka, pipeline.kafka.events_topic)
    assert sorted((header(record, "ce_id"), header(record, "ce_ingestid")) for record in events) == sorted(
        [(expected.id, first.ingest_id), (expected.id, second.ingest_id)]
    )
    # ...which the table keeps once.
    [row] = await pipeline.rows()
    assert row["id"] == expected.id
    assert orjson.loads(row["event"])[INGEST_ID] in {first.ingest_id, second.ingest_id}


async def test_a_request_the_gateway_refuses_leaves_no_row(pipeline: Pipeline) -> None:
    forged_body = example_body(OCTOBER, "update_request", now=pipeline.arrival)
    forged = pipeline.signed(OCTOBER, forged_body, Credentials(secret=b"not-the-october-secret"))
    # A good request after it shows the pipeline carries what the gateway accepts.
    good_body = example_body(OCTOBER, "update_request", now=pipeline.arrival)
    good_signed = pipeline.signed(OCTOBER, good_body)

    refused = await pipeline.post(OCTOBER, forged_body, forged)
    accepted = await pipeline.post(OCTOBER, good_body, good_signed)
    assert (refused.status, refused.answer.get("error")) == (401, "bad_signature"), refused
    assert accepted.status == 200, accepted
    await pipeline.drained()

    raw = await read_topic(pipeline.kafka, pipeline.kafka.raw_topic)
    assert [record.value for record in raw] == [good_body]
    assert [row["id"] for row in await pipeline.rows()] == [pipeline.canonical(OCTOBER, good_body, good_signed).id]


async def test_an_officernd_body_that_does_not_parse_is_accepted_and_dead_lettered_not_stored(
    pipeline: Pipeline,
) -> None:
    # OfficeRnD's own published example has a trailing comma; the signature covers the bytes as sent.
    example = example_body(OFFICERND, "member.removed", now=pipeline.arrival)
    broken_body = example[:-1] + b",}"
    broken = await pipeline.post(OFFICERND, broken_body, pipeline.signed(OFFICERND, broken_body))
    good_body = example_body(OFFICERND, "member.removed", now=pipeline.arrival)
    good_signed = pipeline.signed(OFFICERND, good_body)
    good = await pipeline.post(OFFICERND, good_body, good_signed)
    assert (broken.status, good.status) == (200, 200), (broken, good)
    await pipeline.drained()

    [dead] = await read_topic(pipeline.kafka, pipeline.kafka.dlq_topic)
    assert dead.value == broken_body
    assert header(dead, "hookbus-ingest-id") == broken.ingest_id
    assert header(dead, "hookbus-dlq-reason") == "unparseable_body"
    events = await read_topic(pipeline.kafka, pipeline.kafka.events_topic)
    assert [header(record, "ce_ingestid") for record in events] == [good.ingest_id]
    [row] = await pipeline.rows()
    assert row["id"] == pipeline.canonical(OFFICERND, good_body, good_signed).id
    assert orjson.loads(row["event"])[INGEST_ID] == good.ingest_id
