"""The operations HTTP server of every process: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

Liveness is the process answering at all. Readiness is a named set of conditions: the stage is
ready when none holds, and ``/readyz`` names those that hold, so a probe's log says why::

    200 {"ready": true, "reasons": []}
    503 {"ready": false, "reasons": ["kafka_unreachable", "no_partitions_assigned"]}

The gateway serves the same ``reasons`` in its own ``/readyz`` too. ``/metrics`` is the
Prometheus exposition of the process (:mod:`hookbus.metrics`), served here and never on the
gateway's public listener: what the pipeline counts is for its operators, not for senders.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from http import HTTPStatus
from typing import Any, Final, Protocol

from aiohttp import web
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from hookbus.config import OpsConfig
from hookbus.metrics import CONTENT_TYPE, exposition

__all__ = [
    "ACKS_FAILING",
    "COMMIT_FAILING",
    "DESTINATION_UNREACHABLE",
    "FETCH_FAILING",
    "KAFKA_UNREACHABLE",
    "LEADER_UNKNOWN",
    "NO_PARTITIONS_ASSIGNED",
    "SPOOL_DRAINING",
    "STARTING",
    "TOPIC_UNKNOWN",
    "ClusterProbe",
    "Readiness",
    "readiness_body",
    "serving_ops",
]

STARTING: Final = "starting"
"""Topics, the stage and its clients are not all started yet."""
KAFKA_UNREACHABLE: Final = "kafka_unreachable"
"""No broker, known or bootstrap, answers a metadata request."""
TOPIC_UNKNOWN: Final = "topic_unknown"
"""The cluster answers but does not know a topic the stage uses."""
LEADER_UNKNOWN: Final = "leader_unknown"
"""A partition of a topic the stage uses has no leader."""
NO_PARTITIONS_ASSIGNED: Final = "no_partitions_assigned"
"""The consumer owns no partition (joining its group, or more members than partitions)."""
FETCH_FAILING: Final = "fetch_failing"
"""The last fetch failed."""
COMMIT_FAILING: Final = "commit_failing"
"""The last commit failed and is being retried."""
ACKS_FAILING: Final = "acks_failing"
"""Records published were not acknowledged (timed out or refused) and are being retried."""
DESTINATION_UNREACHABLE: Final = "destination_unreachable"
"""A sink cannot reach where it writes: its probe fails, or its last write failed for an outage."""
SPOOL_DRAINING: Final = "spool_draining"
"""The gateway's spool holds records that Kafka has not acknowledged yet."""

# A probe every few seconds must not become a metadata request each: answers are reused this long.
PROBE_CACHE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 2.0


class Readiness(Protocol):
    async def not_ready_reasons(self) -> Sequence[str]:
        """What keeps the stage from producing or consuming now; empty when ready."""
        ...


def readiness_body(reasons: Sequence[str]) -> tuple[HTTPStatus, dict[str, Any]]:
    """The status and JSON body of ``/readyz`` for ``reasons``."""
    status = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
    return status, {"ready": not reasons, "reasons": list(reasons)}


class ClusterProbe:
    """Whether the cluster answers a client and leads every partition of ``topics``.

    Concurrent probes share one metadata request and its answer is reused for a second.
    ``client`` is an (aiokafka) client of the stage, so the answer is what the stage can reach.
    """

    def __init__(self, client: Any, topics: Iterable[str]) -> None:
        self._client = client
        self._topics = tuple(topics)
        self._answer: tuple[float, list[str]] | None = None
        self._checking: asyncio.Task[list[str]] | None = None

    async def not_ready_reasons(self) -> list[str]:
        if self._answer is not None and time.monotonic() - self._answer[0] < PROBE_CACHE_SECONDS:
            return self._answer[1]
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check())
        reasons = await asyncio.shield(self._checking)
        self._answer = (time.monotonic(), reasons)
        return reasons

    async def _check(self) -> list[str]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                metadata = await self._client.fetch_all_metadata()
        except (TimeoutError, KafkaError, OSError):
            return [KAFKA_UNREACHABLE]
        reasons: list[str] = []
        for topic in self._topics:
            partitions = metadata.partitions_for_topic(topic)
            if not partitions:
                reasons.append(TOPIC_UNKNOWN)
            elif any(metadata.leader_for_partition(TopicPartition(topic, p)) in (None, -1) for p in partitions):
                reasons.append(LEADER_UNKNOWN)
        return sorted(set(reasons))


def _ops_app(readiness: Readiness) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        status, body = readiness_body(await readiness.not_ready_reasons())
        return web.json_response(body, status=status)

    async def metrics(_: web.Request) -> web.Response:
        # In multiprocess mode this reads every worker's files: off the event loop.
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def serving_ops(config: OpsConfig, readiness: Readiness, *, reuse_port: bool = False) -> AsyncIterator[None]:
    """The ops server on ``config.host:config.port`` for the block; nothing when the port is 0.
    ``reuse_port``: processes that share the port (the gateway's workers) each serve it."""
    if not config.port:
        yield
        return
    runner = web.AppRunner(_ops_app(readiness), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port or None).start()
        yield
    finally:
        await runner.cleanup()
