"""Stage 5: webhook to PostgreSQL row through the whole pipeline, at fixed offered loads.

Gateway, normalizer and the PostgreSQL sink run as their own processes on one broker. vegeta
offers 1,000 requests/s, then steps up; every request is distinct (event ids come from the
content, so a repeated request would be deduplicated, not lost). Latency is the row's
``written_at - received_at`` (the gateway's receipt to the insert's transaction). A step is
held when p99 <= 250 ms and every 2xx has its row.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench import payloads
from bench.common import (
    Latency,
    Measurement,
    Settings,
    StageResult,
    UsageSampler,
    child,
    hookbus_command,
    new_port,
    postgres,
    write_config,
)
from bench.kafka_io import ingest_id_times
from bench.load import attack, write_targets
from bench.stage_sinks import PG_TABLE, fresh_database, pg_count
from hookbus.config import HookbusConfig, KafkaConfig, load_config
from hookbus.kafka import ensure_topics, hookbus_topics

P99_LIMIT_MS = 250.0
SETTLE_SECONDS = 30.0
WARM_UP_REQUESTS = 300
WARM_UP_SECONDS = 3.0
PROCESSES = ("gateway", "normalizer", "sink")
# The CloudEvent's ingestid extension, as a binary-mode Kafka header.
EVENT_INGEST_ID_HEADER = "ce_ingestid"


def offered_rates(settings: Settings) -> tuple[int, ...]:
    return settings.pick(smoke=(200,), quick=(1000, 2500, 5000), full=(1000, 2500, 5000, 7500, 10000))


async def settle(dsn: str, expected: int) -> int:
    """Wait until the table holds ``expected`` rows or stops growing; the count then."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = await pg_count(dsn, PG_TABLE)
        if count >= expected:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 5:
            break
        await asyncio.sleep(0.2)
    return await pg_count(dsn, PG_TABLE)


@dataclass(frozen=True, slots=True)
class RowTimes:
    """When one event was received by the gateway and written as a row, Unix seconds."""

    ingest_id: str
    received_at: float
    written_at: float


async def row_times(dsn: str, since: float) -> list[RowTimes]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT event->>'ingestid' AS ingest_id, extract(epoch FROM received_at)::float8 AS received,"  # noqa: S608
            f" extract(epoch FROM written_at)::float8 AS written FROM {PG_TABLE}"
            " WHERE received_at >= to_timestamp($1)",
            since,
        )
    finally:
        await connection.close()
    return [RowTimes(str(row["ingest_id"]), float(row["received"]), float(row["written"])) for row in rows]


async def hop_latencies(kafka: KafkaConfig, rows: list[RowTimes], since: float) -> dict[str, Latency]:
    """Where each row's time went, from the brokers' append times (the topics are created with
    ``LogAppendTime``): the gateway (received to raw record appended: verification, the
    producer's linger and the acks), the normalizer (raw appended to event appended: fetch,
    mapping, linger, acks) and the sink (event appended to the row's transaction: fetch, batch,
    write). Rows whose records were not both found are left out."""
    raw = await ingest_id_times(kafka, kafka.raw_topic, since=since)
    events = await ingest_id_times(kafka, kafka.events_topic, header=EVENT_INGEST_ID_HEADER, since=since)
    hops: dict[str, list[float]] = {"gateway": [], "normalizer": [], "sink": []}
    for row in rows:
        raw_at, event_at = raw.get(row.ingest_id), events.get(row.ingest_id)
        if raw_at is None or event_at is None:
            continue
        hops["gateway"].append(max(0.0, raw_at - row.received_at))
        hops["normalizer"].append(max(0.0, event_at - raw_at))
        hops["sink"].append(max(0.0, row.written_at - event_at))
    return {name: Latency.of(seconds) for name, seconds in hops.items() if seconds}


async def create_topics_with_append_times(config: HookbusConfig) -> None:
    """The pipeline's topics, created before it starts, stamped by the broker at append."""
    specs = [
        dataclasses.replace(spec, configs={**spec.configs, "message.timestamp.type": "LogAppendTime"})
        for spec in hookbus_topics(config)
    ]
    await ensure_topics(config.kafka, specs)


@contextlib.contextmanager
def pipeline(config: Path, port: int, workdir: Path, workers: int) -> Iterator[list[int]]:
    """Gateway, normalizer and PostgreSQL sink running; their PIDs, in :data:`PROCESSES` order."""
    gateway = hookbus_command("gateway", "--config", str(config), "--port", str(port), "--workers", str(workers))
    normalizer = hookbus_command("--log-level", "warning", "normalizer", "--config", str(config))
    sink = hookbus_command("--log-level", "warning", "sink", "postgres", "--config", str(config))
    with (
        child(normalizer, log=workdir / "normalizer.log") as normalizing,
        child(sink, log=workdir / "sink.log") as sinking,
        child(gateway, log=workdir / "gateway.log", port=port) as serving,
    ):
        yield [serving.pid, normalizing.pid, sinking.pid]


def cpu_per_event(samplers: list[UsageSampler], seconds: float, events: int) -> dict[str, float]:
    """CPU milliseconds per event of gateway, normalizer and sink while the step was offered:
    with the broker's and PostgreSQL's, what the machine's cores must pay for every event."""
    return {
        name: sampler.usage().cpu_percent * 10 * seconds / max(events, 1)
        for name, sampler in zip(PROCESSES, samplers, strict=True)
    }


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("e2e")
    port = new_port()
    with postgres(workdir) as server_dsn:
        dsn = asyncio.run(fresh_database(server_dsn))
        prefix = f"bench-e2e-{uuid.uuid4().hex[:8]}"
        sink: dict[str, object] = {
            "type": "postgres",
            "dsn": dsn,
            "group_id": f"{prefix}-pg",
        }
        config = write_config(
            workdir / "e2e.yaml", bootstrap, prefix, normalizer={"group_id": prefix}, sinks={"postgres": sink}
        )
        held: Measurement | None = None
        loaded = load_config(str(config))
        kafka = loaded.kafka
        asyncio.run(create_topics_with_append_times(loaded))
        with pipeline(config, port, workdir, settings.workers) as pids:
            # Warm up (connections, topic metadata, the group's first assignment) before measuring.
            warm_up = write_targets(
                workdir / "warm-up.targets", payloads.mix(WARM_UP_REQUESTS), f"http://127.0.0.1:{port}"
            )
            attack(
                warm_up,
                seconds=WARM_UP_SECONDS,
                rate=WARM_UP_REQUESTS // int(WARM_UP_SECONDS),
                workdir=workdir,
                name="warm-up",
                lazy=True,
            )
            numbered = WARM_UP_REQUESTS
            asyncio.run(settle(dsn, WARM_UP_REQUESTS))
            for rate in offered_rates(settings):
                total = int(rate * settings.hold_seconds)
                targets = write_targets(
                    workdir / f"e2e-{rate}.targets", payloads.mix(total, start=numbered), f"http://127.0.0.1:{port}"
                )
                numbered += total
                before = asyncio.run(pg_count(dsn, PG_TABLE))
                started = time.time()
                samplers = [UsageSampler(pid) for pid in pids]
                with contextlib.ExitStack() as sampling:
                    for sampler in samplers:
                        sampling.enter_context(sampler)
                    sent = attack(
                        targets,
                        seconds=settings.hold_seconds,
                        rate=rate,
                        workdir=workdir,
                        name=f"e2e-{rate}",
                        lazy=True,
                    )
                targets.unlink()
                rows = asyncio.run(settle(dsn, before + sent.ok)) - before
                times = asyncio.run(row_times(dsn, started - 1))
                latency = Latency.of([row.written_at - row.received_at for row in times])
                hops = asyncio.run(hop_latencies(kafka, times, started - 1))
                costs = cpu_per_event(samplers, settings.hold_seconds, sent.ok)
                step = Measurement(
                    "e2e",
                    f"offered {rate}/s",
                    rows / settings.hold_seconds,
                    "events/s",
                    latency,
                    samplers[0].usage(),
                    ok=rows,
                    failed=max(0, sent.ok - rows),
                    note=f"2xx {sent.ok} of {sent.sent}; HTTP p99 {sent.latency.p99:.0f} ms; CPU ms/event "
                    + ", ".join(f"{name} {cost:.2f}" for name, cost in costs.items())
                    + "; p50/p99 ms per hop "
                    + ", ".join(f"{name} {hop.p50:.1f}/{hop.p99:.1f}" for name, hop in hops.items()),
                    cpu_ms_per_event=costs,
                    hops=hops,
                )
                result.measurements.append(step)
                if latency.p99 > P99_LIMIT_MS or step.failed or sent.failed:
                    break
                held = step
        if held is not None:
            result.measurements.append(
                Measurement(
                    "e2e",
                    "held",
                    held.rate,
                    "events/s",
                    held.latency,
                    held.usage,
                    ok=held.ok,
                    failed=held.failed,
                    note=f"highest step held: {held.case}",
                )
            )
    result.notes.append(
        f"Each step offers its rate for {settings.hold_seconds:g} s of distinct signed requests (the mix, 1 KiB);"
        " stepping stops at the first step with p99 > 250 ms, a non-2xx answer or a 2xx without its row."
        " Latency is written_at - received_at of each row. Every setting at its default; CPU/RSS are the gateway's;"
        " the notes give each hookbus process's CPU milliseconds per event during the step (broker, PostgreSQL and"
        " vegeta not counted): their sum times the offered rate, against the cores, says whether a step can be held."
        " The hops are timed by the broker's append times (the topics use LogAppendTime): gateway = receipt to the raw"
        " record appended, normalizer = raw record to event appended, sink = event appended to the row's transaction."
    )
    return result
