"""Per-source spools with a real broker: a spool that holds records never holds back new requests
(of its own source or another's), every spool drains beside continued traffic, and the single
shared spool of an earlier version is drained after an upgrade.

The spools are filled while Kafka answers, by writing them as a gateway that crashed would have
left them, so which request goes where does not depend on timing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from hookbus.config import HookbusConfig, KafkaConfig, parse_source
from hookbus.kafka import ensure_topics, hookbus_topics
from hookbus.rawevent import RawEvent
from ingest.publisher import UNDELIVERABLE_DIRECTORY, KafkaPublisher, Receipt, SpoolingPublisher, record_of
from ingest.spool import SOURCES_DIRECTORY, Spool, claim_sources
from tests.ingest.conftest import RawTopic, StartGateway, eventually, gateway_config

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

SOURCES = ("rnd", "octa")
SPOOLED_PER_SOURCE = 2_000
MAX_BYTES = 256 * 1024 * 1024
DRAIN_TIMEOUT_SECONDS = 120.0


def config_of(kafka: KafkaConfig, spool_dir: Path) -> HookbusConfig:
    sources = [
        parse_source({"secrets": ["whsec-per-source-1"]}, name="rnd", provider="officernd"),
        parse_source(
            {"api_key": "per-source-key-2", "ip_allowlist": ["127.0.0.1/32"]}, name="octa", provider="octamile"
        ),
    ]
    return gateway_config(
        kafka, sources, ack_timeout_seconds=10.0, answer_deadline_seconds=11.0, spool_dir=str(spool_dir)
    )


def event(source: str, label: str) -> RawEvent:
    provider = "officernd" if source == "rnd" else "octamile"
    return RawEvent(
        source=source, provider=provider, ingest_id=f"{label}-{uuid.uuid4()}", received_at=time.time(), body=b"{}"
    )


async def leave_spooled(directory: Path, count: int, source: str) -> list[str]:
    """Records in ``directory`` as a crashed gateway leaves them: fsynced, the slot unlocked."""
    spool = Spool.open(directory, max_bytes=MAX_BYTES)
    events = [event(source, "spooled") for _ in range(count)]
    await asyncio.gather(*(spool.append(record_of(item)) for item in events))
    spool.release()
    return [item.ingest_id for item in events]


@pytest.fixture
async def config(kafka_config: KafkaConfig, tmp_path: Path) -> HookbusConfig:
    config = config_of(kafka_config, tmp_path / "spool")
    await ensure_topics(config.kafka, hookbus_topics(config))
    return config


@pytest.fixture
async def kafka(config: HookbusConfig) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher.from_config(config)
    await publisher.start()
    yield publisher
    await publisher.stop()


def spool_root(config: HookbusConfig) -> Path:
    return Path(config.gateway.spool_dir) / config.kafka.raw_topic


async def test_a_source_with_a_spool_does_not_hold_back_new_requests_and_its_spool_empties_under_load(
    config: HookbusConfig, kafka: KafkaPublisher
) -> None:
    root = spool_root(config)
    spooled = await leave_spooled(root / SOURCES_DIRECTORY / "rnd" / "worker-0", SPOOLED_PER_SOURCE, "rnd")
    claims = await asyncio.to_thread(claim_sources, root, SOURCES, max_bytes=MAX_BYTES)
    publisher = SpoolingPublisher(kafka, claims, undeliverable=root / UNDELIVERABLE_DIRECTORY)
    assert publisher.depth_by_source()["rnd"].records == SPOOLED_PER_SOURCE
    assert publisher.depth_by_source()["octa"].records == 0

    # Not draining yet: a new request of either source still goes to Kafka, not behind the spool.
    live = [event(source, "before-drain") for source in SOURCES]
    for item in live:
        assert isinstance(await publisher.publish(item), Receipt)

    publisher.start()
    try:
        while publisher.depth().records:
            batch = [event(source, "during-drain") for source in SOURCES for _ in range(5)]
            receipts = await asyncio.gather(*(publisher.publish(item) for item in batch))
            assert all(isinstance(receipt, Receipt) for receipt in receipts)
            live += batch
    finally:
        await publisher.stop()

    in_topic = [dict(record.headers)["hookbus-ingest-id"].decode() for record in await RawTopic(config.kafka).records()]
    answered = [item.ingest_id for item in live]
    assert sorted(set(in_topic)) == sorted(set(spooled + answered)), "every accepted event has its raw record"
    assert len(in_topic) == len(set(in_topic)), "no event was published twice"
    # One spool drains oldest first.
    assert [ingest_id for ingest_id in in_topic if ingest_id in set(spooled)] == spooled
    assert list(root.glob("**/*.seg")) == []


async def test_the_shared_spool_of_an_earlier_version_is_drained_after_the_upgrade(
    config: HookbusConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    root = spool_root(config)
    # The layout before per-source spools: every source in the same slots, directly under the root.
    spooled = await leave_spooled(root / "worker-0", 50, "rnd") + await leave_spooled(root / "worker-1", 50, "octa")

    gateway = await start_gateway(config)

    async def drained() -> bool:
        async with http.get(gateway.url("/readyz")) as response:
            return response.status == 200 and (await response.json())["spool"]["records"] == 0

    await eventually(drained, timeout=DRAIN_TIMEOUT_SECONDS, interval=0.5)
    in_topic = [dict(record.headers)["hookbus-ingest-id"].decode() for record in await RawTopic(config.kafka).records()]
    assert sorted(in_topic) == sorted(spooled)
    assert not (root / "worker-0").exists()
    assert not (root / "worker-1").exists()
