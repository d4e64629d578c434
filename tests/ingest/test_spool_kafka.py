"""The spool with a real broker that dies: OfficeRnD requests are answered 200 from the spool and
all reach the raw topic in order once Kafka is back; a non-spooling source gets 503; a full
spool gets 503 spool_full; a gateway restarted with a non-empty spool drains it.

This file runs a broker of its own (never the shared one) so it can kill it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookbus.config import HookbusConfig, KafkaConfig, parse_source
from hookbus.provider import Credentials
from tests.ingest.conftest import (
    RawTopic,
    RunningGateway,
    StartGateway,
    eventually,
    gateway_config,
    headers,
    running_gateway,
)
from tools.localkafka import LocalKafka
from tools.send import sign

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

ACK_TIMEOUT_SECONDS = 1.0
RECOVERY_TIMEOUT_SECONDS = 120.0
SECRET = "whsec-spool-test-6a1f0c93"
API_KEY = "spool-key-8d2e4b17"
OUTAGE_REQUESTS = 8


def spool_config(own_kafka: LocalKafka, spool_dir: Path, **gateway: Any) -> HookbusConfig:
    kafka = KafkaConfig(
        bootstrap_servers=own_kafka.bootstrap_servers,
        raw_topic=f"spool-{uuid.uuid4().hex[:8]}.raw",
        topic_partitions=1,
        development_mode=True,
    )
    sources = [
        parse_source({"secrets": [SECRET]}, name="rnd", provider="officernd"),
        parse_source(
            {"api_key": API_KEY, "ip_allowlist": ["127.0.0.1/32"], "spool": False}, name="direct", provider="octamile"
        ),
    ]
    settings = {
        "ack_timeout_seconds": ACK_TIMEOUT_SECONDS,
        "shutdown_timeout_seconds": 5.0,
        "spool_dir": str(spool_dir),
    }
    return gateway_config(kafka, sources, **{**settings, **gateway})


async def post_officernd(http: aiohttp.ClientSession, gateway: RunningGateway, number: int) -> aiohttp.ClientResponse:
    body = f'{{"event":"evt-{number:04d}","eventType":"member.updated","data":{{"object":{{"_id":"m-{number % 2}"}}}}}}'
    body = body.encode()
    signed = sign("officernd", body, Credentials(secret=SECRET.encode()), now=gateway.clock.now)
    async with http.post(gateway.url("/webhooks/rnd"), data=body, headers=signed.headers) as response:
        await response.read()
        return response


async def post_direct(http: aiohttp.ClientSession, gateway: RunningGateway) -> aiohttp.ClientResponse:
    async with http.post(gateway.url("/webhooks/direct"), data=b"{}", headers={"X-API-Key": API_KEY}) as response:
        await response.read()
        return response


async def readiness(http: aiohttp.ClientSession, gateway: RunningGateway) -> tuple[int, dict[str, Any]]:
    async with http.get(gateway.url("/readyz")) as response:
        return response.status, await response.json()


async def spool_records(http: aiohttp.ClientSession, gateway: RunningGateway) -> int:
    _, body = await readiness(http, gateway)
    return int(body["spool"]["records"])


async def spool_outage(http: aiohttp.ClientSession, gateway: RunningGateway) -> list[str]:
    """OfficeRnD requests for longer than the ack deadline with Kafka away: every one is answered 200."""
    ingest_ids = []
    for number in range(OUTAGE_REQUESTS):
        response = await post_officernd(http, gateway, number)
        assert response.status == 200, await response.text()
        ingest_ids.append(str((await response.json())["id"]))
        await asyncio.sleep(ACK_TIMEOUT_SECONDS / 4)
    return ingest_ids


def in_topic_order(records: list[Any], wanted: list[str]) -> list[str]:
    """The ingest ids of ``wanted`` in the order the topic holds them, each once."""
    order: list[str] = []
    for record in records:
        ingest_id = headers(record)["hookbus-ingest-id"].decode()
        if ingest_id in wanted and ingest_id not in order:
            order.append(ingest_id)
    return order


async def test_officernd_is_spooled_during_an_outage_and_drains_in_order(
    own_kafka: LocalKafka, start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    gateway = await start_gateway(spool_config(own_kafka, tmp_path / "spool"))
    # No record fits in a one-byte spool.
    tiny = await start_gateway(spool_config(own_kafka, tmp_path / "tiny", spool_max_bytes=1))
    before = await post_officernd(http, gateway, 9999)
    assert before.status == 200
    status, body = await readiness(http, gateway)
    assert (status, body["spool"], body["reasons"]) == (200, {"records": 0, "bytes": 0}, [])

    await asyncio.to_thread(own_kafka.kill)
    ingest_ids = await spool_outage(http, gateway)
    direct = await post_direct(http, gateway)
    assert direct.status == 503
    assert (await direct.json())["error"] == "kafka_unavailable"
    refused = await post_officernd(http, tiny, 5)
    assert refused.status == 503
    assert (await refused.json())["error"] == "spool_full"
    assert int(refused.headers["Retry-After"]) > 0
    status, body = await readiness(http, gateway)
    assert status == 503
    assert 0 < body["spool"]["records"] <= OUTAGE_REQUESTS
    assert {"kafka_unreachable", "spool_draining"} <= set(body["reasons"])

    await asyncio.to_thread(own_kafka.restart)
    await eventually(lambda: is_zero(spool_records(http, gateway)), timeout=RECOVERY_TIMEOUT_SECONDS, interval=0.5)
    records = await RawTopic(gateway.config.kafka).records()
    assert in_topic_order(records, ingest_ids) == ingest_ids
    assert list((tmp_path / "spool").glob("**/*.seg")) == []
    # Spooled records keep the entity key the gateway read, as published ones do.
    spooled_keys = {record.key for record in records if headers(record)["hookbus-ingest-id"].decode() in ingest_ids}
    assert spooled_keys == {b"rnd/officernd:member:m-0", b"rnd/officernd:member:m-1"}


async def is_zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def test_a_gateway_restarted_with_a_spool_while_kafka_is_down_drains_it_later(
    own_kafka: LocalKafka, start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = spool_config(own_kafka, tmp_path / "spool")
    async with running_gateway(config) as first:
        assert (await post_officernd(http, first, 0)).status == 200
        await asyncio.to_thread(own_kafka.kill)
        ingest_ids = await spool_outage(http, first)
    assert list((tmp_path / "spool").glob("**/*.seg")) != []

    second = await start_gateway(config)
    status, body = await readiness(http, second)
    assert status == 503
    assert body["spool"]["records"] == OUTAGE_REQUESTS
    await asyncio.to_thread(own_kafka.restart)
    await eventually(lambda: is_zero(spool_records(http, second)), timeout=RECOVERY_TIMEOUT_SECONDS, interval=0.5)
    records = await RawTopic(config.kafka).records()
    assert in_topic_order(records, ingest_ids) == ingest_ids
    assert list((tmp_path / "spool").glob("**/*.seg")) == []
