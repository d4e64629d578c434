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
import time
import uuid
from collections.abc import Iterator
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
from bench.load import attack, write_targets
from bench.stage_sinks import PG_TABLE, fresh_database, pg_count

P99_LIMIT_MS = 250.0
SETTLE_SECONDS = 30.0
SINK_BATCH_TIMEOUT_SECONDS = 0.05
WARM_UP_REQUESTS = 300
WARM_UP_SECONDS = 3.0
PROCESSES = ("gateway", "normalizer", "sink")


def offered_rates(settings: Settings) -> tuple[int, ...]:
    return (1000, 2500, 5000) if settings.quick else (1000, 2500, 5000, 7500, 10000)


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


async def row_latencies(dsn: str, since: float) -> list[float]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            f"SELECT extract(epoch FROM written_at - received_at)::float8 AS seconds FROM {PG_TABLE}"  # noqa: S608
            " WHERE received_at >= to_timestamp($1)",
            since,
        )
    finally:
        await connection.close()
    return [float(row["seconds"]) for row in rows]


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


def cpu_per_event(samplers: list[UsageSampler], seconds: float, events: int) -> str:
    """CPU milliseconds per event of gateway, normalizer and sink while the step was offered:
    with the broker's and PostgreSQL's, what the machine's cores must pay for every event."""
    costs = [sampler.usage().cpu_percent * 10 * seconds / max(events, 1) for sampler in samplers]
    return "CPU ms/event " + ", ".join(f"{name} {cost:.2f}" for name, cost in zip(PROCESSES, costs, strict=True))


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
            "batch_timeout_seconds": SINK_BATCH_TIMEOUT_SECONDS,
        }
        config = write_config(
            workdir / "e2e.yaml", bootstrap, prefix, normalizer={"group_id": prefix}, sinks={"postgres": sink}
        )
        held: Measurement | None = None
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
                latency = Latency.of(asyncio.run(row_latencies(dsn, started - 1)))
                step = Measurement(
                    "e2e",
                    f"offered {rate}/s",
                    rows / settings.hold_seconds,
                    "events/s",
                    latency,
                    samplers[0].usage(),
                    ok=rows,
                    failed=max(0, sent.ok - rows),
                    note=f"2xx {sent.ok} of {sent.sent}; HTTP p99 {sent.latency.p99:.0f} ms; "
                    + cpu_per_event(samplers, settings.hold_seconds, sent.ok),
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
        f" Latency is written_at - received_at of each row. The sink's batch_timeout_seconds is"
        f" {SINK_BATCH_TIMEOUT_SECONDS} (latency-oriented); everything else at its defaults; CPU/RSS are the gateway's;"
        " the notes give each hookbus process's CPU milliseconds per event during the step (broker, PostgreSQL and"
        " vegeta not counted): their sum times the offered rate, against the cores, says whether a step can be held."
    )
    return result
