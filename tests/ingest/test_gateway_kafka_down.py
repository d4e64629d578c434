"""The gateway when its broker dies and comes back: 503 within the deadline, then recovery.

This file runs a broker of its own (never the shared one) so it can kill it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Iterator

import aiohttp
import orjson
import pytest
import structlog

from hookbus.config import KafkaConfig, parse_source
from hookbus.logging import configure_logging
from tests.ingest.conftest import RawTopic, RunningGateway, StartGateway, eventually, gateway_config
from tools.localkafka import LocalKafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(240)]

ACK_TIMEOUT_SECONDS = 1.5
# Room for the event loop and the HTTP round trip on a busy two-core machine.
DEADLINE_MARGIN_SECONDS = 1.5
RECOVERY_TIMEOUT_SECONDS = 90.0
API_KEY = "down-key-1c2d3e4f"


@pytest.fixture
async def gateway(own_kafka: LocalKafka, start_gateway: StartGateway) -> RunningGateway:
    kafka = KafkaConfig(
        bootstrap_servers=own_kafka.bootstrap_servers, raw_topic="down.raw", topic_partitions=1, development_mode=True
    )
    # spool: false, since octamile would spool by default and this test is about the 503.
    source = parse_source(
        {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "spool": False}, name="down", provider="octamile"
    )
    config = gateway_config(kafka, [source], ack_timeout_seconds=ACK_TIMEOUT_SECONDS, shutdown_timeout_seconds=5.0)
    return await start_gateway(config)


async def post(http: aiohttp.ClientSession, gateway: RunningGateway) -> aiohttp.ClientResponse:
    async with http.post(
        gateway.url("/webhooks/down"), data=b'{"status":"a"}', headers={"X-API-Key": API_KEY}
    ) as response:
        await response.read()
        return response


async def readiness(http: aiohttp.ClientSession, gateway: RunningGateway) -> int:
    async with http.get(gateway.url("/readyz")) as response:
        return response.status


async def readiness_reasons(http: aiohttp.ClientSession, gateway: RunningGateway) -> list[str]:
    async with http.get(gateway.url("/readyz")) as response:
        return list((await response.json())["reasons"])


async def is_status(status: Awaitable[int], wanted: int) -> bool:
    return await status == wanted


async def accepted(http: aiohttp.ClientSession, gateway: RunningGateway) -> str | None:
    """The ingest id of a request, or ``None`` when the gateway answered 503 (Kafka still away)."""
    response = await post(http, gateway)
    assert response.status in {200, 503}
    return str((await response.json())["id"]) if response.status == 200 else None


async def test_kafka_down_answers_503_in_time_and_recovers(
    own_kafka: LocalKafka, gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    response = await post(http, gateway)
    assert response.status == 200

    await asyncio.to_thread(own_kafka.kill)
    started = time.monotonic()
    response = await post(http, gateway)
    elapsed = time.monotonic() - started
    assert response.status == 503
    assert (await response.json())["error"] == "kafka_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert elapsed < ACK_TIMEOUT_SECONDS + DEADLINE_MARGIN_SECONDS
    await eventually(lambda: is_status(readiness(http, gateway), 503), timeout=10)
    assert "kafka_unreachable" in await readiness_reasons(http, gateway)

    await asyncio.to_thread(own_kafka.restart)
    ingest_ids: list[str] = []

    async def recovered() -> bool:
        ingest_id = await accepted(http, gateway)
        ingest_ids.extend([ingest_id] if ingest_id else [])
        return ingest_id is not None

    await eventually(recovered, timeout=RECOVERY_TIMEOUT_SECONDS, interval=0.5)
    await eventually(lambda: is_status(readiness(http, gateway), 200), timeout=10)
    assert await readiness_reasons(http, gateway) == []
    assert set(ingest_ids) <= set(await RawTopic(gateway.config.kafka).records_by_ingest_id())


OUTAGE_OBSERVED_SECONDS = 4.0
# The first line of each kind aiokafka logs in an outage (a handful), and a count per interval
# after that; without the limit it was some hundred lines in these seconds.
MOST_LIBRARY_LINES = 12


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The process's logging sent to a stream, as ``hookbus`` commands set it up; put back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()


async def test_an_outage_does_not_flood_the_log(
    # The stream first: the gateway's loggers are bound when it starts.
    log_stream: io.StringIO,
    own_kafka: LocalKafka,
    gateway: RunningGateway,
    http: aiohttp.ClientSession,
) -> None:
    assert (await post(http, gateway)).status == 200
    before = len(log_stream.getvalue().splitlines())
    await asyncio.to_thread(own_kafka.kill)
    try:
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE_OBSERVED_SECONDS:
            assert (await post(http, gateway)).status == 503
        lines = [orjson.loads(line) for line in log_stream.getvalue().splitlines()[before:]]
    finally:
        await asyncio.to_thread(own_kafka.restart)
    library = [line for line in lines if str(line.get("logger", "")).startswith("aiokafka")]
    assert library, "the outage is not in the log at all"
    assert len(library) <= MOST_LIBRARY_LINES, [line["event"][:60] for line in library]
    # The gateway's own line for every request is never held back.
    assert sum(line["event"] == "request" for line in lines) >= 2
