"""The in-flight body budget: how many bytes of request bodies one gateway process may be
reading or holding at once, across all its requests (``gateway.max_inflight_body_bytes``,
shared by ``--workers N`` processes, each getting ``1/N`` of it).

A request takes its share after its checks passed and before its body is read: its declared
``Content-Length`` at once, a chunked body chunk by chunk as it grows. It holds the share
until it is answered (the body is in memory until Kafka or the spool has it). A request that
finds no room is refused with 503 ``overloaded`` and Retry-After instead of waiting, so a
crowd of slow uploads cannot grow the process past the budget. A source whose
``max_body_bytes`` is above a process's budget is logged at startup: its largest bodies can
never be taken. What aiohttp reads ahead of
the handler on each connection (at most its read buffer, 64 KiB by default) is not counted.
"""

from __future__ import annotations

from hookbus.config import HookbusConfig
from hookbus.logging import get_logger


class BodyShare:
    """One request's part of the budget; :meth:`release` gives it back (once)."""

    def __init__(self, budget: BodyBudget, size: int) -> None:
        self._budget = budget
        self._size = size

    def cover(self, size: int) -> bool:
        """Make the share at least ``size`` bytes; whether the budget had the room."""
        if size <= self._size:
            return True
        if not self._budget.take(size - self._size):
            return False
        self._size = size
        return True

    def release(self) -> None:
        self._budget.give_back(self._size)
        self._size = 0


class BodyBudget:
    """The bytes of bodies held by this process's requests, bounded by ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def reserve(self, size: int) -> BodyShare | None:
        """A share of ``size`` bytes, or ``None`` when the budget has no room for it."""
        return BodyShare(self, size) if self.take(size) else None

    def take(self, size: int) -> bool:
        """Add ``size`` bytes to what is held, if they fit; whether they did."""
        if self._held + size > self._limit:
            return False
        self._held += size
        return True

    def give_back(self, size: int) -> None:
        self._held -= size


def per_process_budget(config: HookbusConfig, processes: int) -> int:
    return config.gateway.max_inflight_body_bytes // max(1, processes)


def warn_of_bodies_larger_than_the_budget(config: HookbusConfig, processes: int) -> None:
    """Log at startup the sources whose largest bodies can never fit in a process's budget:
    such a body is refused with 503 ``overloaded`` however long its sender waits."""
    budget = per_process_budget(config, processes)
    too_large = [source.name for source in config.sources if source.max_body_bytes > budget]
    if too_large:
        get_logger(service="gateway").warning(
            "inflight_budget_below_max_body_bytes", sources=too_large, budget_bytes=budget, processes=processes
        )
