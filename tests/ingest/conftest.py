"""Gateway fixtures: a live gateway on a loopback port, a settable clock, the raw topic as read back."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from hookbus.config import GatewayConfig, HookbusConfig, KafkaConfig, SourceConfig
from hookbus.kafka import client_options
from ingest.server import serve
from tests.support import free_port
from tools.localkafka import QUICK_START_JVM_OPTIONS, LocalKafka
from tools.localprocess import LOOPBACK

LOOPBACK_NETWORK = ipaddress.ip_network("127.0.0.1/32")
# Bounds every wait of these tests, so a broken gateway fails a test instead of hanging it.
STARTUP_TIMEOUT_SECONDS = 60.0


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.2) -> None:
    """Poll ``check`` until it holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(interval)


@dataclass(slots=True)
class FixedClock:
    """The gateway's clock, set by the test to the moment a request "arrives"."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


def gateway_config(
    kafka: KafkaConfig,
    sources: Iterable[SourceConfig],
    *,
    trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = (LOOPBACK_NETWORK,),
    path: str = "<test>",
    **gateway: float,
) -> HookbusConfig:
    return HookbusConfig(
        path=path,
        kafka=kafka,
        gateway=GatewayConfig(host=LOOPBACK, **gateway),  # type: ignore[arg-type]
        trusted_proxies=tuple(trusted_proxies),
        sources=tuple(sources),
        normalizer={},
        sinks={},
    )


@dataclass(frozen=True, slots=True)
class RunningGateway:
    config: HookbusConfig
    port: int
    clock: FixedClock

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path


@contextlib.asynccontextmanager
async def running_gateway(config: HookbusConfig, clock: FixedClock | None = None) -> AsyncIterator[RunningGateway]:
    """:func:`ingest.server.serve` on a free loopback port, stopped (and drained) on exit."""
    clock = clock if clock is not None else FixedClock()
    port = free_port()
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(config, host=LOOPBACK, port=port, stop=stop, ready=ready, clock=clock))
    ready_wait = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, ready_wait}, timeout=STARTUP_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what made the gateway fail to start
            raise AssertionError("the gateway stopped before it was ready")
        assert ready.is_set(), "the gateway did not start in time"
        yield RunningGateway(config=config, port=port, clock=clock)
    finally:
        ready_wait.cancel()
        stop.set()
        async with asyncio.timeout(config.gateway.shutdown_timeout_seconds + 5):
            await asyncio.gather(task, return_exceptions=True)


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway() -> AsyncIterator[StartGateway]:
    """Start live gateways in a test; every one is stopped when the test ends."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(config: HookbusConfig, clock: FixedClock | None = None) -> RunningGateway:
            return await stack.enter_async_context(running_gateway(config, clock))

        yield start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


class RawTopic:
    """The raw topic, read from outside the gateway as the normalizer would."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka

    @contextlib.asynccontextmanager
    async def _consumer(self) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
        consumer = AIOKafkaConsumer(
            **client_options(self._kafka),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        try:
            # The gateway creates the topic with the configured number of partitions.
            partitions = [
                TopicPartition(self._kafka.raw_topic, number) for number in range(self._kafka.topic_partitions)
            ]
            yield consumer, partitions
        finally:
            await consumer.stop()

    async def end_offsets(self) -> dict[int, int]:
        async with self._consumer() as (consumer, partitions):
            offsets = await consumer.end_offsets(partitions)
        return {partition.partition: offset for partition, offset in offsets.items()}

    async def records(self) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record in the topic now, in partition order."""
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with self._consumer() as (consumer, partitions), asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            remaining = {partition for partition in partitions if ends[partition] > 0}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=1000)
                for partition, batch in batches.items():
                    records.extend(batch)
                    if batch and batch[-1].offset + 1 >= ends[partition]:
                        remaining.discard(partition)
        return records

    async def records_by_ingest_id(self) -> dict[str, ConsumerRecord[bytes, bytes]]:
        return {headers(record)["hookbus-ingest-id"].decode(): record for record in await self.records()}


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, bytes]:
    return dict(record.headers)


@pytest.fixture
def raw_topic(kafka_config: KafkaConfig) -> RawTopic:
    return RawTopic(kafka_config)


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafka]:
    """A broker of the module's own, for tests that kill and restart it (never the shared one)."""
    with LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS) as kafka:
        yield kafka
