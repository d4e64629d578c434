"""Stage 1: the gateway against a bare aiohttp handler and against itself without publishing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import payloads
from bench.common import (
    VENV_PYTHON,
    Measurement,
    Settings,
    StageResult,
    UsageSampler,
    child,
    hookbus_command,
    new_port,
    write_config,
)
from bench.load import MAX_RATE_CONCURRENCY, attack, write_targets
from bench.payloads import KIB, Request

DISTINCT_TARGETS = 200
DISTINCT_CERTIFICATES = 3


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    make: Callable[[int], Request]
    distinct: int = DISTINCT_TARGETS
    concurrency: int = MAX_RATE_CONCURRENCY


CASES = (
    Case("october-1k", lambda n: payloads.example("october", KIB, n)),
    Case("officernd-1k", lambda n: payloads.example("officernd", KIB, n)),
    Case("october-64k", lambda n: payloads.example("october", 64 * KIB, n)),
    Case("officernd-64k", lambda n: payloads.example("officernd", 64 * KIB, n)),
    Case(
        "octamile-5mb",
        lambda n: payloads.with_certificate(n, payloads.CERTIFICATE_BYTES),
        distinct=DISTINCT_CERTIFICATES,
        # 5 MB bodies queue behind each other at 64 connections; 8 in flight is already 40 MB.
        concurrency=8,
    ),
)
# The half-rate latency target is checked on the common case.
LATENCY_CASE = "october-1k"
SERVERS = ("bare", "nopublish", "gateway")


def server_command(server: str, config: Path, port: int, workers: int) -> list[str]:
    if server == "bare":
        return [str(VENV_PYTHON), "-m", "bench.bare_server", "--port", str(port), "--workers", str(workers)]
    if server == "nopublish":
        return [
            *[str(VENV_PYTHON), "-m", "bench.nopublish_server"],
            *["--config", str(config), "--port", str(port), "--workers", str(workers)],
        ]
    return hookbus_command("gateway", "--config", str(config), "--port", str(port), "--workers", str(workers))


def measure_server(
    server: str,
    cases: Iterable[Case],
    settings: Settings,
    config: Path,
    workdir: Path,
    *,
    latency_case: str | None = LATENCY_CASE,
) -> list[Measurement]:
    """Each case at the highest rate the server reaches; the latency case again at half that rate."""
    port = new_port()
    base_url = f"http://127.0.0.1:{port}"
    measurements = []
    command = server_command(server, config, port, settings.workers)
    with child(command, log=workdir / f"{server}.log", port=port) as process:
        for case in cases:
            # Signed just before they are sent, so the timestamps are fresh.
            targets = write_targets(
                workdir / f"{case.name}.targets", (case.make(n) for n in range(case.distinct)), base_url
            )
            with UsageSampler(process.pid) as sampler:
                result = attack(
                    targets,
                    seconds=settings.attack_seconds,
                    concurrency=case.concurrency,
                    workdir=workdir,
                    name=f"{server}-{case.name}",
                )
            measurements.append(
                Measurement(
                    "gateway",
                    f"{server}/{case.name}",
                    result.rate,
                    "req/s",
                    result.latency,
                    sampler.usage(),
                    ok=result.ok,
                    failed=result.failed,
                    note=_statuses(result.statuses),
                )
            )
            if server == "gateway" and case.name == latency_case and result.rate > 0:
                half = max(1, int(result.rate / 2))
                with UsageSampler(process.pid) as sampler:
                    paced = attack(
                        targets, seconds=settings.attack_seconds, rate=half, workdir=workdir, name=f"{server}-half"
                    )
                measurements.append(
                    Measurement(
                        "gateway",
                        f"{server}/{case.name}@half",
                        paced.rate,
                        "req/s",
                        paced.latency,
                        sampler.usage(),
                        ok=paced.ok,
                        failed=paced.failed,
                        note=f"offered {half}/s; {_statuses(paced.statuses)}",
                    )
                )
            targets.unlink()
    return measurements


def _statuses(statuses: dict[int, int]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("gateway")
    config = write_config(workdir / "gateway.yaml", bootstrap, "bench-gateway")
    for server in SERVERS:
        result.measurements.extend(measure_server(server, CASES, settings, config, workdir))
    for case in CASES:
        result.notes.append(ratio_line(result, case.name))
    result.notes.append(
        f"{settings.workers} worker process(es) per server; vegeta with {settings.attack_seconds:g} s per case at"
        " the highest rate 64 connections reach; requests signed just before each case, sources accept"
        f" {payloads.TOLERANCE_SECONDS} s of clock skew."
    )
    return result


def ratio_line(result: StageResult, case: str) -> str:
    """``case``: the gateway as a share of the bare handler and of itself without publishing."""
    rates = {server: result.find(f"{server}/{case}") for server in SERVERS}
    gateway = rates["gateway"]
    shares = [
        f"{gateway.rate / baseline.rate:.2f}x {server}"
        for server, baseline in rates.items()
        if server != "gateway" and gateway is not None and baseline is not None and baseline.rate > 0
    ]
    return f"{case}: gateway = " + (", ".join(shares) if shares else "not measured")
