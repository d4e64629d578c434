"""The gateway's metrics: every answer by source, verdict, reason and status; latencies, sizes; what it holds.

A request is counted once it is answered, under its source's name (:data:`~hookbus.metrics.UNKNOWN`
for a name no source has: the path is the sender's choice), its verdict (``accept``, ``reject``,
``failed``), its reason (:data:`~hookbus.metrics.NONE` when accepted) and its status. The label
children every request touches are bound per source when the gateway is built; the combinations
of a refusal are bound the first time they occur (there are a few dozen at most).

What the gateway holds (requests and body bytes in flight, the spool's records and bytes) is
sampled every :data:`SAMPLE_SECONDS`; with ``--workers N`` each worker reports its own and the
exposition sums the live workers (:mod:`hookbus.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Final

from aiohttp import web
from prometheus_client import Counter, Gauge, Histogram

from hookbus.metrics import BYTES_BUCKETS, NONE, SECONDS_BUCKETS, UNKNOWN
from ingest.spool import SpoolDepth

__all__ = ["GatewayMetrics", "SourceMetrics", "SpoolGauges"]

SAMPLE_SECONDS: Final = 1.0
ACCEPT: Final = "accept"
PUBLISHED_TO_KAFKA: Final = "kafka"
PUBLISHED_TO_SPOOL: Final = "spool"
PUBLISH_FAILED: Final = "failed"

REQUESTS: Final = Counter(
    "hookbus_gateway_requests_total",
    "Webhook requests answered, by source, verdict (accept, reject, failed), reason and HTTP status.",
    ["source", "verdict", "reason", "status"],
)
REQUEST_SECONDS: Final = Histogram(
    "hookbus_gateway_request_duration_seconds",
    "Time from the request's headers to its answer, by source and verdict.",
    ["source", "verdict"],
    buckets=SECONDS_BUCKETS,
)
BODY_BYTES: Final = Histogram(
    "hookbus_gateway_request_body_bytes",
    "Sizes of the request bodies read whole (refused before or while reading: not counted).",
    ["source"],
    buckets=BYTES_BUCKETS,
)
PUBLISH_SECONDS: Final = Histogram(
    "hookbus_gateway_publish_duration_seconds",
    "Time to make an accepted request durable, by where it went: kafka, spool, or failed.",
    ["source", "outcome"],
    buckets=SECONDS_BUCKETS,
)
INFLIGHT_REQUESTS: Final = Gauge(
    "hookbus_gateway_inflight_requests", "Requests being handled.", multiprocess_mode="livesum"
)
INFLIGHT_BODY_BYTES: Final = Gauge(
    "hookbus_gateway_inflight_body_bytes",
    "Bytes of request bodies being read or held (the in-flight body budget in use).",
    multiprocess_mode="livesum",
)
SPOOL_RECORDS: Final = Gauge(
    "hookbus_gateway_spool_records",
    "Records in a source's spool that Kafka has not acknowledged yet.",
    ["source"],
    multiprocess_mode="livesum",
)
SPOOL_BYTES: Final = Gauge(
    "hookbus_gateway_spool_bytes", "Bytes a source's spool occupies on disk.", ["source"], multiprocess_mode="livesum"
)
SPOOL_LIMIT_BYTES: Final = Gauge(
    "hookbus_gateway_spool_limit_bytes",
    "Bytes a source's spool may hold before requests get 503 spool_full.",
    ["source"],
    multiprocess_mode="livesum",
)


class SourceMetrics:
    """The label children of one source."""

    def __init__(self, source: str) -> None:
        self._source = source
        self.body_bytes = BODY_BYTES.labels(source)
        self._published = {
            outcome: PUBLISH_SECONDS.labels(source, outcome)
            for outcome in (PUBLISHED_TO_KAFKA, PUBLISHED_TO_SPOOL, PUBLISH_FAILED)
        }
        self._seconds = {ACCEPT: REQUEST_SECONDS.labels(source, ACCEPT)}
        self._answers: dict[tuple[str, str | None, int], Counter] = {
            (ACCEPT, None, 200): REQUESTS.labels(source, ACCEPT, NONE, "200")
        }

    def answered(self, verdict: str, reason: str | None, status: int, seconds: float) -> None:
        key = (verdict, reason, status)
        counter = self._answers.get(key)
        if counter is None:
            counter = self._answers[key] = REQUESTS.labels(self._source, verdict, reason or NONE, str(status))
        counter.inc()
        histogram = self._seconds.get(verdict)
        if histogram is None:
            histogram = self._seconds[verdict] = REQUEST_SECONDS.labels(self._source, verdict)
        histogram.observe(seconds)

    def published(self, *, accepted: bool, spooled: bool, seconds: float) -> None:
        """A publish that made the event durable (in Kafka, or ``spooled``), or ended in a refusal."""
        durable_in = PUBLISHED_TO_SPOOL if spooled else PUBLISHED_TO_KAFKA
        self._published[durable_in if accepted else PUBLISH_FAILED].observe(seconds)


class GatewayMetrics:
    """Every source's :class:`SourceMetrics`, and one for the names no source has."""

    def __init__(self, sources: Iterable[str]) -> None:
        self._sources = {name: SourceMetrics(name) for name in sources}
        self._unknown = SourceMetrics(UNKNOWN)

    def source(self, name: str) -> SourceMetrics:
        return self._sources.get(name, self._unknown)


class SpoolGauges:
    """The spool's depth and room per source, as the gauges say it (given by :mod:`ingest.server`)."""

    def __init__(self, depths: Callable[[], Mapping[str, SpoolDepth]], limits: Mapping[str, int]) -> None:
        self._depths = depths
        for source, limit in limits.items():
            SPOOL_LIMIT_BYTES.labels(source).set(limit)

    def sample(self) -> None:
        for source, depth in self._depths().items():
            SPOOL_RECORDS.labels(source).set(depth.records)
            SPOOL_BYTES.labels(source).set(depth.bytes)


def sampling(
    in_flight: Callable[[], int], body_bytes: Callable[[], int], spool: SpoolGauges | None
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    """An aiohttp cleanup context that samples what the gateway holds while the application runs."""

    def sample() -> None:
        INFLIGHT_REQUESTS.set(in_flight())
        INFLIGHT_BODY_BYTES.set(body_bytes())
        if spool is not None:
            spool.sample()

    async def sample_forever() -> None:
        while True:
            sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    @contextlib.asynccontextmanager
    async def running(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sample_forever(), name="gateway-metrics")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sample()  # what is left once the last request is answered

    return running
