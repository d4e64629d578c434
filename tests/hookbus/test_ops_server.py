"""The ops server answers liveness and readiness; a stage is ready only while it can consume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from hookbus.config import KafkaConfig, OpsConfig
from hookbus.ops_server import KAFKA_UNREACHABLE, NO_PARTITIONS_ASSIGNED, serving_ops
from hookbus.stage.processor import ProcessorStage
from tests.hookbus.test_stage import Copier, _settings, running
from tests.sinks.helpers import eventually
from tools.localkafka import QUICK_START_JVM_OPTIONS, LocalKafka
from tools.localprocess import LOOPBACK, free_port


@dataclass
class Conditions:
    """Readiness as a test sets it."""

    reasons: list[str] = field(default_factory=list)

    async def not_ready_reasons(self) -> Sequence[str]:
        return self.reasons


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def answer(http: aiohttp.ClientSession, port: int, path: str) -> tuple[int, Any]:
    async with http.get(f"http://{LOOPBACK}:{port}{path}") as response:
        return response.status, await response.json()


async def test_the_ops_server_answers_liveness_and_names_what_keeps_it_from_being_ready(
    http: aiohttp.ClientSession,
) -> None:
    conditions = Conditions()
    ops = OpsConfig(host=LOOPBACK, port=free_port())
    async with serving_ops(ops, conditions):
        assert await answer(http, ops.port, "/healthz") == (200, {"status": "alive"})
        assert await answer(http, ops.port, "/readyz") == (200, {"ready": True, "reasons": []})
        conditions.reasons = [KAFKA_UNREACHABLE, NO_PARTITIONS_ASSIGNED]
        assert await answer(http, ops.port, "/readyz") == (
            503,
            {"ready": False, "reasons": [KAFKA_UNREACHABLE, NO_PARTITIONS_ASSIGNED]},
        )
        conditions.reasons = []
        assert await answer(http, ops.port, "/healthz") == (200, {"status": "alive"})
    with pytest.raises(aiohttp.ClientConnectionError):
        await answer(http, ops.port, "/healthz")


@pytest.fixture(scope="module")
def own_kafka() -> Iterator[LocalKafka]:
    """A broker of the module's own, killed and restarted by a test (never the shared one)."""
    with LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS) as kafka:
        yield kafka


async def test_a_stage_is_not_ready_while_kafka_is_away_and_ready_again_once_back(
    own_kafka: LocalKafka, http: aiohttp.ClientSession
) -> None:
    kafka = KafkaConfig(
        bootstrap_servers=own_kafka.bootstrap_servers, client_id="readiness", topic_partitions=1, development_mode=True
    )
    ops = OpsConfig(host=LOOPBACK, port=free_port())
    settings = _settings(kafka, "readiness.in", ops=ops)

    async def readiness() -> tuple[int, Any]:
        return await answer(http, ops.port, "/readyz")

    async def ready() -> bool:
        return await readiness() == (200, {"ready": True, "reasons": []})

    async def unreachable() -> bool:
        status, body = await readiness()
        return status == 503 and KAFKA_UNREACHABLE in body["reasons"]

    async with running(kafka, settings, ProcessorStage(Copier("readiness.out"))):
        assert await eventually(ready), await readiness()
        await asyncio.to_thread(own_kafka.kill)
        assert await eventually(unreachable), await readiness()
        assert (await answer(http, ops.port, "/healthz"))[0] == 200
        await asyncio.to_thread(own_kafka.restart)
        assert await eventually(ready, timeout=60), await readiness()
