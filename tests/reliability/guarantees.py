"""What every fault scenario must hold to, whatever broke: the checks, after its numbers are recorded."""

from __future__ import annotations

from typing import Any

from tests.reliability.harness import Tally
from tests.reliability.report import FAULTS, Finding


def check(findings: list[Finding], name: str, tally: Tally, **measured: Any) -> None:
    """Record the scenario's numbers (the tally and what else it ``measured``), then hold it to the guarantees."""
    findings.append(Finding(FAULTS, name, {**tally.as_dict(), **measured}, tuple(tally.problems())))
    assert tally.answered_2xx > 0, tally
    assert tally.lost == 0, f"answered 2xx but not stored: {tally.lost_examples}"
    assert tally.duplicates == 0, tally
    assert tally.other_5xx == 0, tally.refusals
    assert tally.dead_letters == 0, tally
    assert not tally.crashed, tally.crashed
    assert tally.in_topic >= tally.answered_2xx, tally
