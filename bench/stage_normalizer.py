"""Stage 3: the normalizer draining a preloaded raw topic, against a copy with no mapping.

Also what inline Octamile certificates cost (event size, events/s), and a pyinstrument
profile of the normalizer on the mix, whose top frames go into the report.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from bench import payloads
from bench.common import VENV_PYTHON, Measurement, Settings, StageResult, child, hookbus_command, write_config
from bench.kafka_io import OffsetWatcher, first_record_size, preload, watch_drain
from hookbus.config import HookbusConfig, load_config
from hookbus.rawevent import RawEvent

DRAIN_TIMEOUT_SECONDS = 240.0
PROFILE_LINES = 45


def _config(settings: Settings, bootstrap: str, workdir: Path, name: str) -> HookbusConfig:
    prefix = f"bench-normalizer-{name}-{uuid.uuid4().hex[:8]}"
    path = write_config(workdir / f"{name}.yaml", bootstrap, prefix, normalizer={"group_id": prefix})
    return load_config(path)


def consumer_command(kind: str, config: HookbusConfig, profile: Path | None = None) -> list[str]:
    if kind == "copy":
        return [str(VENV_PYTHON), "-m", "bench.copy_consumer", "--config", config.path]
    command = hookbus_command("--log-level", "warning", "normalizer", "--config", config.path)
    if profile is None:
        return command
    return [str(VENV_PYTHON), "-m", "pyinstrument", "-r", "text", "-o", str(profile), *command[1:]]


def drain(
    kind: str,
    case: str,
    events: Iterable[RawEvent],
    *,
    settings: Settings,
    bootstrap: str,
    workdir: Path,
    command_for: Callable[[HookbusConfig], list[str]],
) -> Measurement:
    """Preload ``events``, start ``command_for(config)`` and time it draining the raw topic."""
    config = _config(settings, bootstrap, workdir, f"{kind}-{case}")
    count = asyncio.run(preload(config, events))
    topics = [config.kafka.events_topic, config.kafka.dlq_topic]
    with child(command_for(config), log=workdir / f"{kind}-{case}.log") as process:
        result = asyncio.run(watch_drain(config.kafka, topics, count, process, timeout=DRAIN_TIMEOUT_SECONDS))
    dead_letters = asyncio.run(_count(config, [config.kafka.dlq_topic]))
    size = asyncio.run(first_record_size(config.kafka, config.kafka.events_topic))
    return Measurement(
        "normalizer",
        f"{kind}/{case}",
        result.rate,
        "events/s",
        ok=count - dead_letters,
        failed=dead_letters,
        note=f"{count} events; first event {size:,} bytes"
        + (f"; {dead_letters} dead-lettered" if dead_letters else ""),
    )


async def _count(config: HookbusConfig, topics: list[str]) -> int:
    async with OffsetWatcher(config.kafka, topics) as watcher:
        return await watcher.count()


def top_frames(profile: Path) -> list[str]:
    """The head of pyinstrument's call tree, as a fenced block for the report."""
    if not profile.exists():
        return ["(no profile was written)"]
    lines = profile.read_text(encoding="utf-8", errors="replace").splitlines()
    return ["pyinstrument, normalizer on the mix (top of the call tree):", "", "```", *lines[:PROFILE_LINES], "```"]


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("normalizer")
    count = settings.drain_events
    certificates = settings.pick(smoke=2, quick=20, full=100)
    profile = workdir / "normalizer-profile.txt"
    cases: list[tuple[str, str, Callable[[], list[RawEvent]], Callable[[HookbusConfig], list[str]]]] = [
        ("copy", "mix", lambda: _mix(count), lambda config: consumer_command("copy", config)),
        ("normalizer", "mix", lambda: _mix(count), lambda config: consumer_command("normalizer", config)),
        (
            "normalizer",
            "octamile-5mb-cert",
            lambda: [_octamile(n, payloads.CERTIFICATE_BYTES) for n in range(certificates)],
            lambda config: consumer_command("normalizer", config),
        ),
        (
            "normalizer",
            "octamile-no-cert",
            # More of them: 20 small events drain between two polls of the offsets.
            lambda: [_octamile(n, 0) for n in range(count)],
            lambda config: consumer_command("normalizer", config),
        ),
    ]
    for kind, case, events, command_for in cases:
        result.measurements.append(
            drain(
                kind, case, events(), settings=settings, bootstrap=bootstrap, workdir=workdir, command_for=command_for
            )
        )
    drain(
        "profiled",
        "mix",
        _mix(count),
        settings=settings,
        bootstrap=bootstrap,
        workdir=workdir,
        command_for=lambda config: consumer_command("normalizer", config, profile),
    )
    result.notes.append(
        f"Mix of {count} raw events (1 KiB bodies): 40% October, 30% OfficeRnD, 20% Offerte Adviseur, 10% Octamile;"
        " preloaded, then timed from the first event out to the last (start-up and group join excluded)."
        f" Certificates: {certificates} approved Octamile events with a 5 MB base64 certificate inline vs"
        f" {count} without one."
    )
    with_certificate, without = result.find("normalizer/octamile-5mb-cert"), result.find("normalizer/octamile-no-cert")
    if with_certificate is not None and without is not None and without.rate > 0:
        result.notes.append(
            f"Inline certificates: {with_certificate.rate:,.1f} vs {without.rate:,.1f} events/s"
            f" ({with_certificate.rate / without.rate:.3f}x); event sizes in the notes column."
        )
    result.details.extend(top_frames(profile))
    return result


def _mix(count: int) -> list[RawEvent]:
    return [request.raw_event() for request in payloads.mix(count)]


def _octamile(number: int, certificate_bytes: int) -> RawEvent:
    return payloads.with_certificate(number, certificate_bytes).raw_event()
