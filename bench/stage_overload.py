"""Stage: the gateway offered three times the highest rate it holds, and what it answers.

First the highest rate the gateway holds on a mix of October (which retries) and OfficeRnD
(which never retries, so its source spools) 1 KiB requests, with 64 connections. Then vegeta
offers ``--overload-factor`` (3) times that, open loop, for ``--overload-seconds`` (30 s; 6 s
in quick mode), with the gateway's default load-shedding settings (``answer_deadline_seconds``
2 s). Reported: the answer time of every request (any status, the client's 30 s timeouts
included) up to the maximum, the share of 200 and 503, and loss: 2xx answers whose ingest id
is not in the raw topic once the spool has drained (must be 0).

Beside the answer times vegeta sees, the stage reads the gateway's own: the
``hookbus_gateway_request_duration_seconds`` histogram (headers parsed to answer) from its
``/metrics``, before and after the offered phase. The difference between the two views is
time the gateway never saw: in the kernel's accept queue, or in a load generator that, on a
small machine, competes with the gateway for the cores (its CPU is reported too).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import payloads
from bench.common import (
    BenchError,
    Measurement,
    Settings,
    StageResult,
    UsageSampler,
    child,
    hookbus_command,
    new_port,
    write_config,
)
from bench.kafka_io import ingest_id_times
from bench.load import AttackResult, attack, write_targets
from bench.payloads import KIB
from hookbus.config import GatewayConfig, load_config
from tools.localprocess import LOOPBACK

RETRYING, SPOOLING = "october", "officernd"
DISTINCT_TARGETS = 200
DRAIN_TIMEOUT_SECONDS = 180.0
READ_TOPIC_TIMEOUT_SECONDS = 120.0
# What the client's side of an answer may add to the gateway's deadline on a shared machine.
DEADLINE_MARGIN_MS = 500.0
DEADLINE_CASE = "overload/offered"


ANSWER_HISTOGRAM = "hookbus_gateway_request_duration_seconds"


def overload_config(workdir: Path, bootstrap: str, ops_port: int) -> Path:
    """The bench sources with OfficeRnD spooling (as in production), and the gateway's defaults;
    its ``/metrics`` on ``ops_port``."""
    sources = payloads.sources_config()
    for source in sources:
        source["spool"] = source["provider"] == SPOOLING
    return write_config(
        workdir / "overload.yaml",
        bootstrap,
        "bench-overload",
        gateway={"host": LOOPBACK, "spool_dir": str(workdir / "spool")},
        ops={"host": LOOPBACK, "port": ops_port},
        sources=sources,
    )


def answer_buckets(ops_url: str) -> dict[float, float]:
    """The gateway's answer-time histogram now, all sources and verdicts: answers per upper bound (cumulative)."""
    with urllib.request.urlopen(f"{ops_url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode("utf-8")
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != ANSWER_HISTOGRAM:
            continue
        for sample in family.samples:
            if sample.name == f"{ANSWER_HISTOGRAM}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def gateway_view(before: dict[float, float], after: dict[float, float], deadline: float) -> str:
    """What the gateway's histogram says of the answers between two scrapes: the share within
    the deadline, and the bucket the slowest falls in."""
    counts = {bound: after.get(bound, 0.0) - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return "gateway-side: no answer counted"
    within = max((count for bound, count in counts.items() if bound <= deadline), default=0.0)
    slowest = min(bound for bound, count in counts.items() if count >= total)
    finite = [bound for bound in counts if bound != float("inf")]
    above = f"> {max(finite):g}" if slowest == float("inf") else f"<= {slowest:g}"
    return (
        f"gateway-side (headers to answer, its histogram): {100 * within / total:.1f}% within {deadline:g} s,"
        f" slowest {above} s"
    )


def children_cpu_seconds() -> float:
    """CPU seconds (user and system) of this process's finished children: vegeta's, here."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spool_records(base_url: str) -> int:
    """What the gateway's spools hold, from ``/readyz`` (which answers 503 while they drain)."""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=5) as response:  # noqa: S310 - loopback
            document: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as refused:
        document = json.load(refused)
    return int(document.get("spool", {}).get("records", 0))


def wait_for_the_spool(base_url: str) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while spool_records(base_url):
        if time.monotonic() > deadline:
            raise BenchError(f"the spool did not drain within {DRAIN_TIMEOUT_SECONDS:.0f} s")
        time.sleep(0.5)


def shares(result: AttackResult) -> str:
    """Each status as a share of what was sent (0 is vegeta's own timeout or connection error)."""
    return ", ".join(f"{status}: {100 * count / result.sent:.1f}%" for status, count in sorted(result.statuses.items()))


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("overload")
    ops_port = new_port()
    config = overload_config(workdir, bootstrap, ops_port)
    ops_url = f"http://{LOOPBACK}:{ops_port}"
    port = new_port()
    base_url = f"http://{LOOPBACK}:{port}"
    command = hookbus_command(
        "gateway", "--config", str(config), "--port", str(port), "--workers", str(settings.workers)
    )
    with child(command, log=workdir / "gateway.log", port=port) as process:
        requests = (
            payloads.example(RETRYING if number % 2 else SPOOLING, KIB, number) for number in range(DISTINCT_TARGETS)
        )
        targets = write_targets(workdir / "mix.targets", requests, base_url)
        with UsageSampler(process.pid) as sampler:
            held = attack(targets, seconds=settings.attack_seconds, workdir=workdir, name="overload-held")
        result.measurements.append(
            Measurement(
                "overload",
                "overload/held",
                held.rate,
                "req/s",
                held.latency,
                sampler.usage(),
                ok=held.ok,
                failed=held.failed,
                note=f"64 connections; {shares(held)}",
            )
        )
        offered = max(1, round(held.rate * settings.overload_factor))
        before, generator_before = answer_buckets(ops_url), children_cpu_seconds()
        with UsageSampler(process.pid) as sampler:
            over = attack(
                targets,
                seconds=settings.overload_duration,
                rate=offered,
                workdir=workdir,
                name="overload",
                keep_ids=True,
            )
        generator_cpu = 100 * (children_cpu_seconds() - generator_before) / max(over.seconds, 1e-9)
        gateway_side = gateway_view(before, answer_buckets(ops_url), GatewayConfig().answer_deadline_seconds)
        wait_for_the_spool(base_url)
        targets.unlink()
    kafka = load_config(str(config)).kafka
    stored = set(asyncio.run(asyncio.wait_for(ingest_id_times(kafka, kafka.raw_topic), READ_TOPIC_TIMEOUT_SECONDS)))
    lost = len(over.accepted_ids - stored)
    result.measurements.append(
        Measurement(
            "overload",
            DEADLINE_CASE,
            over.rate,
            "req/s",
            over.answered,
            sampler.usage(),
            ok=over.ok,
            failed=lost,
            note=f"offered {offered}/s ({settings.overload_factor:g}x held) for {settings.overload_duration:g} s;"
            f" {shares(over)}; lost {lost} (2xx without a raw record); {gateway_side};"
            f" the load generator used {generator_cpu:.0f}% of a core",
        )
    )
    result.notes.append(
        f"{settings.workers} worker process(es); answer_deadline_seconds 2 (the default). Latencies of"
        f" {DEADLINE_CASE} are of every answer (any status) up to the maximum; 'ok' counts the 2xx, 'failed'"
        " counts the 2xx whose ingest id is not in the raw topic once the spool has drained."
    )
    return result


def within_the_deadline(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    """The report's target: at 3x, every answer within the deadline (plus the client's margin), nothing lost."""
    stage = results.get("overload")
    item = stage.find(DEADLINE_CASE) if stage is not None else None
    if item is None or item.latency is None:
        return None
    deadline_ms = GatewayConfig().answer_deadline_seconds * 1000
    met = item.latency.max <= deadline_ms + DEADLINE_MARGIN_MS and item.failed == 0
    return f"max {item.latency.max:,.0f} ms, p99 {item.latency.p99:,.0f} ms, lost {item.failed}", met
