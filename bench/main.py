"""``bench/run``: every stage on loopback against one broker, then the report with its charts."""

from __future__ import annotations

import argparse
import importlib
import platform
import shlex
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import REPO, BenchError, Measurement, Mode, Settings, StageResult, broker, machine_facts
from bench.report import Target, at_most, ratio, write_report
from bench.stage_overload import within_the_deadline

STAGES = ("gateway", "overload", "kafka", "normalizer", "sinks", "e2e", "peer")


def _find(results: dict[str, StageResult], stage: str, case: str) -> Measurement | None:
    stage_result = results.get(stage)
    return stage_result.find(case) if stage_result is not None else None


def _half_rate_p99(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    item = _find(results, "gateway", "gateway/october-1k@half")
    return at_most(item, item.latency.p99 if item and item.latency else None, 25.0, "ms p99")


def _rss_under_load(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    stage = results.get("gateway")
    peaks = (
        [m.usage.peak_rss_mb for m in stage.measurements if m.case.startswith("gateway/") and m.usage] if stage else []
    )
    if not peaks:
        return None
    return f"{max(peaks):.0f} MB peak (5 MB bodies included)", max(peaks) <= 150


def _e2e_held(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    item = _find(results, "e2e", "held")
    stage = results.get("e2e")
    if item is None and stage is not None and stage.measurements:
        first = stage.measurements[0]
        return f"no step held ({first.case}: p99 {first.latency.p99 if first.latency else 0:.0f} ms)", False
    if item is None or item.latency is None:
        return None
    met = item.rate >= 5000 and item.latency.p99 <= 250 and item.failed == 0
    return f"{item.rate:,.0f} events/s, p99 {item.latency.p99:.0f} ms, lost {item.failed}", met


def _e2e_p99_at_1000(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    item = _find(results, "e2e", "offered 1000/s")
    if item is None or item.latency is None:
        return None
    hops = ", ".join(f"{name} {hop.p99:.0f}" for name, hop in item.hops.items())
    return f"{item.latency.p99:.0f} ms p99 (per hop, ms p99: {hops or 'not measured'})", item.latency.p99 <= 50


def _e2e_cpu_at_1000(results: dict[str, StageResult]) -> tuple[str, bool] | None:
    item = _find(results, "e2e", "offered 1000/s")
    if item is None or not item.cpu_ms_per_event:
        return None
    total = sum(item.cpu_ms_per_event.values())
    parts = ", ".join(f"{name} {cost:.2f}" for name, cost in item.cpu_ms_per_event.items())
    return f"{total:.2f} ms/event ({parts})", total <= 0.4


# This round's targets (performance round two) first, then the earlier rounds' that still stand.
TARGETS = (
    Target(
        "gateway >= 0.5x bare aiohttp (October 1 KiB)",
        lambda r: ratio(r, "gateway", "gateway/october-1k", "bare/october-1k", 0.5),
    ),
    Target("gateway p99 <= 25 ms at half its max rate", _half_rate_p99),
    Target("gateway at 3x its max rate: every answer within the 2 s deadline (+0.5 s), zero loss", within_the_deadline),
    Target("end to end p99 webhook-to-row <= 50 ms at 1,000 events/s", _e2e_p99_at_1000),
    Target("hookbus CPU <= 0.4 ms per event at 1,000 events/s", _e2e_cpu_at_1000),
    Target(
        "normalizer >= 1.0x Redpanda Connect bloblang",
        lambda r: ratio(r, "peer", "hookbus/mapping", "peer/mapping", 1.0),
    ),
    Target("PostgreSQL sink >= 0.7x raw COPY", lambda r: ratio(r, "sinks", "postgres-sink", "asyncpg-copy", 0.7)),
    Target(
        "gateway >= 0.6x bare aiohttp (October 1 KiB; the first round's)",
        lambda r: ratio(r, "gateway", "gateway/october-1k", "bare/october-1k", 0.6),
    ),
    Target(
        "gateway >= 1.0x Redpanda Connect http_server", lambda r: ratio(r, "peer", "hookbus/http", "peer/http", 1.0)
    ),
    Target("gateway RSS <= 150 MB under load", _rss_under_load),
    Target("normalizer >= 0.5x no-mapping copy", lambda r: ratio(r, "normalizer", "normalizer/mix", "copy/mix", 0.5)),
    Target("end to end >= 5,000 events/s held, p99 <= 250 ms, zero loss", _e2e_held),
)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const=Mode.QUICK,
        help="short runs: the whole bench in under 5 minutes",
    )
    speed.add_argument(
        "--smoke",
        dest="mode",
        action="store_const",
        const=Mode.SMOKE,
        help="seconds per case, to prove the harness works (CI): fails when a stage fails, numbers mean nothing",
    )
    parser.set_defaults(mode=Mode.FULL)
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the report goes")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes (and the baselines')")
    parser.add_argument(
        "--overload-factor", type=float, default=3.0, help="overload: times the highest rate the gateway holds"
    )
    parser.add_argument(
        "--overload-seconds", type=float, default=None, help="overload: how long it is offered (30 s; quick: 6 s)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.stages.split(",")) - set(STAGES)
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    started = time.monotonic()
    # Before any stage: the load average then says how busy the machine was without us.
    facts = machine_facts()
    settings = Settings(
        mode=args.mode,
        out=args.out,
        workers=args.workers,
        overload_factor=args.overload_factor,
        overload_seconds=args.overload_seconds,
    )
    wanted = [stage for stage in STAGES if stage in args.stages.split(",")]
    results: dict[str, StageResult] = {}
    with tempfile.TemporaryDirectory(prefix="hookbus-bench-") as scratch, broker(Path(scratch)) as bootstrap:
        for stage in wanted:
            workdir = Path(scratch) / "stages" / stage
            workdir.mkdir(parents=True)
            print(f"bench: {stage} ...", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench.stage_{stage}")
            try:
                results[stage] = module.run(settings, bootstrap, workdir)
            except (BenchError, ImportError, OSError) as exc:
                results[stage] = StageResult(stage, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a failing stage must not lose the others' numbers
                traceback.print_exc()
                results[stage] = StageResult(stage, error=f"{type(exc).__name__}: {exc}")
            print(f"bench: {stage} done ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    report = args.out / f"{stamp}-{platform.node()}.md"
    write_report(
        report,
        title=f"hookbus benchmark, {stamp}, {args.mode} mode",
        facts=facts,
        results=results,
        targets=TARGETS,
        command="bench/run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        elapsed=time.monotonic() - started,
        private_paths={Path(scratch): "<workdir>", args.out.resolve(): "<out>"},
    )
    print(f"bench: report written to {report}", file=sys.stderr)
    failed = {stage: result.error for stage, result in results.items() if result.error}
    for stage, error in failed.items():
        print(f"bench: stage {stage} failed: {error}", file=sys.stderr)
    # A full or quick run keeps going with the stages that worked (their numbers are worth
    # having); a smoke run exists to say whether every stage works.
    return 1 if failed and args.mode is Mode.SMOKE else 0


if __name__ == "__main__":
    raise SystemExit(main())
