"""Replays the console asks for, done by ``hookbus replay``'s own code (:func:`tools.replay.replay`).

Dead letters are named by their index ids (``<topic>:<partition>:<offset>``) or selected by
a filter of the index, the same the dead-letter list applies, so a dry run counts exactly
what the list shows. A normalizer dead letter goes back to the raw topic; a sink's is written into that
sink again (see :mod:`tools.replay` for why). A corrected body replays one dead letter with
the body as its value, flagged ``hookbus-edited`` with the original's digest; the dead letter
itself stays in its topic, so the original is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hookbus.config import HookbusConfig
from normalizer.errors import ReplayError
from tools.console.records import NORMALIZER_STAGE, SINK_STAGE_PREFIX
from tools.replay import Edit, ReplayOptions, ReplayReport, replay

__all__ = ["Letter", "ReplayOutcome", "replay_letters"]


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


def _runs(letters: Sequence[Letter]) -> list[tuple[Letter, int]]:
    """``letters`` as runs of consecutive offsets of one topic's partition: ``(first, last offset)``,
    so that replaying a page of dead letters reads each run once instead of each letter."""
    runs: list[tuple[Letter, int]] = []
    for letter in sorted(set(letters), key=lambda item: (item.sink or "", item.partition, item.offset)):
        if runs:
            first, last = runs[-1]
            if (first.sink, first.partition) == (letter.sink, letter.partition) and letter.offset == last + 1:
                runs[-1] = (first, letter.offset)
                continue
        runs.append((letter, letter.offset))
    return runs


async def replay_letters(
    config: HookbusConfig, letters: Sequence[Letter], *, dry_run: bool, body: bytes | None = None
) -> ReplayOutcome:
    """Replay each of ``letters`` (with ``body``, exactly one, corrected)."""
    outcome = ReplayOutcome(dry_run)
    if body is not None:
        if len(letters) != 1:
            raise ReplayError("a corrected body replays exactly one dead letter")
        (letter,) = letters
        edit = Edit(letter.partition, letter.offset, body)
        outcome.add(await replay(config, ReplayOptions(sink=letter.sink, dry_run=dry_run, edit=edit)))
        return outcome
    for first, last in _runs(letters):
        options = ReplayOptions(
            sink=first.sink,
            dry_run=dry_run,
            partitions=frozenset({first.partition}),
            from_offset=first.offset,
            to_offset=last,
        )
        outcome.add(await replay(config, options))
    return outcome
