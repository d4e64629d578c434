"""Replays the console asks for, done by ``hookbus replay``'s own code (:func:`tools.replay.replay`).

Dead letters are named by their index ids (``<topic>:<partition>:<offset>``) or selected by
a filter. A normalizer dead letter goes back to the raw topic; a sink's is written into that
sink again (see :mod:`tools.replay` for why). A corrected body replays one dead letter with
the body as its value, flagged ``hookbus-edited`` with the original's digest; the dead letter
itself stays in its topic, so the original is kept.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hookbus.config import HookbusConfig
from normalizer.errors import ReplayError
from tools.console.records import NORMALIZER_STAGE, SINK_STAGE_PREFIX
from tools.replay import Edit, ReplayOptions, ReplayReport, replay

__all__ = ["ReplayFilter", "ReplayOutcome", "replay_filtered", "replay_letters"]


@dataclass(frozen=True, slots=True)
class ReplayFilter:
    stage: str | None = None
    reason: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None


@dataclass(slots=True)
class ReplayOutcome:
    """The answer of ``POST /api/v1/replays``, summed over the replays it took."""

    dry_run: bool
    selected: int = 0
    replayed: int = 0
    still_failing: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    def add(self, report: ReplayReport) -> None:
        self.selected += report.selected
        self.replayed += report.replayed
        # A dry run counts what would be dead-lettered again as still failing.
        self.still_failing += sum(report.still_failing.values()) + sum(report.would_fail.values())
        self.by_reason.update(report.by_reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "selected": self.selected,
            "replayed": self.replayed,
            "still_failing": self.still_failing,
            "by_reason": dict(sorted(self.by_reason.items())),
        }


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter to replay, as the index knows it."""

    partition: int
    offset: int
    sink: str | None


def _sink_of(stage: str) -> str | None:
    if stage == NORMALIZER_STAGE:
        return None
    if stage.startswith(SINK_STAGE_PREFIX):
        return stage.removeprefix(SINK_STAGE_PREFIX)
    raise ReplayError(f"{stage!r} is neither {NORMALIZER_STAGE!r} nor {SINK_STAGE_PREFIX}<name>")


async def replay_letters(
    config: HookbusConfig, letters: Sequence[Letter], *, dry_run: bool, body: bytes | None = None
) -> ReplayOutcome:
    """Replay each of ``letters`` (with ``body``, exactly one, corrected)."""
    if body is not None and len(letters) != 1:
        raise ReplayError("a corrected body replays exactly one dead letter")
    outcome = ReplayOutcome(dry_run)
    for letter in letters:
        options = ReplayOptions(sink=letter.sink, dry_run=dry_run)
        if body is not None:
            options = dataclasses.replace(options, edit=Edit(letter.partition, letter.offset, body))
        else:
            options = dataclasses.replace(
                options,
                partitions=frozenset({letter.partition}),
                from_offset=letter.offset,
                to_offset=letter.offset,
            )
        outcome.add(await replay(config, options))
    return outcome


async def replay_filtered(config: HookbusConfig, selected: ReplayFilter, *, dry_run: bool) -> ReplayOutcome:
    """Replay the dead letters ``selected`` selects: of its stage, or of the normalizer and every sink."""
    if selected.since is not None and selected.until is not None and selected.since >= selected.until:
        raise ReplayError("since must be before until")
    stages = (
        [selected.stage]
        if selected.stage is not None
        else [NORMALIZER_STAGE, *(SINK_STAGE_PREFIX + name for name in sorted(config.sinks))]
    )
    sinks = [_sink_of(stage) for stage in stages]
    if selected.source is not None and selected.stage is not None and sinks[0] is not None:
        raise ReplayError("source selects the normalizer's dead letters (raw events); a sink's are events")
    outcome = ReplayOutcome(dry_run)
    for sink in sinks:
        if sink is not None and selected.source is not None:
            continue
        options = ReplayOptions(
            sink=sink,
            dry_run=dry_run,
            reasons=frozenset({selected.reason}) if selected.reason is not None else frozenset(),
            sources=frozenset({selected.source}) if selected.source is not None else frozenset(),
            since=selected.since,
            until=selected.until,
        )
        outcome.add(await replay(config, options))
    return outcome
