"""Failed sign-ins per client address: the console's answer to someone guessing its token.

Every failed ``POST /login``, and every request whose ``Authorization: Bearer`` is not the
token, counts against the client's address in a sliding window. An address with
``max_failures`` failures within the last ``window_seconds`` is answered 429 with
Retry-After until the oldest of them leaves the window, and its token is not compared at
all meanwhile: a guess that cannot be answered is not worth sending. A success counts
nothing. The cookie is not counted: it is an HMAC under the token, no easier to guess than
the token, and a browser still holding one from before a rotation would lock its own
address out with the page's first few requests.

Memory is bounded twice: an address keeps at most ``max_failures`` times, and at most
``max_addresses`` addresses are tracked, the one that failed least recently forgotten first,
so an attacker with many addresses cannot grow the map (and gains nothing by evicting: each
of their addresses has its own ``max_failures`` guesses anyway). An IPv6 address counts by
its /64, which one host usually has whole.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hookbus.logging import get_logger
from ingest.clientaddr import parse_address

__all__ = ["FailedSignIns", "SignInLimit"]

Clock = Callable[[], float]
IPV6_HOST_PREFIX: Final = 64


@dataclass(frozen=True, slots=True)
class SignInLimit:
    """How many failed sign-ins an address may make, and how many addresses are remembered."""

    max_failures: int = 10
    window_seconds: float = 300.0
    max_addresses: int = 10_000


class FailedSignIns:
    """The recent failures of each client address (clock times, oldest first)."""

    def __init__(self, limit: SignInLimit | None = None, *, clock: Clock = time.monotonic) -> None:
        self.limit = limit or SignInLimit()
        self._clock = clock
        self._log = get_logger(service="console", component="sign_ins")
        # Least recently failed first: the end a full map forgets.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """``None`` while ``address`` may try, else the whole seconds (at least 1) until it may again."""
        failures = self._recent(_counted_as(address))
        if len(failures) < self.limit.max_failures:
            return None
        return max(1, math.ceil(failures[0] + self.limit.window_seconds - self._clock()))

    def failed(self, address: str) -> int | None:
        """Count a failure of ``address``; what :meth:`retry_after` then says, logged when it holds it back."""
        key = _counted_as(address)
        failures = self._recent(key)
        failures.append(self._clock())
        self._failures[key] = failures
        self._failures.move_to_end(key)
        while len(self._failures) > self.limit.max_addresses:
            self._failures.popitem(last=False)
        retry_after = self.retry_after(address)
        if retry_after is not None:
            self._log.warning("console_sign_ins_limited", client=address, counted_as=key, retry_after=retry_after)
        return retry_after

    @property
    def addresses(self) -> int:
        """How many addresses are remembered."""
        return len(self._failures)

    def _recent(self, key: str) -> deque[float]:
        """The failures of ``key`` still inside the window (forgetting the key when none is)."""
        failures = self._failures.get(key)
        if failures is None:
            return deque(maxlen=self.limit.max_failures)
        oldest_kept = self._clock() - self.limit.window_seconds
        while failures and failures[0] <= oldest_kept:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures


def _counted_as(address: str) -> str:
    """What failures of ``address`` count against: the address, or an IPv6 address's /64."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, IPV6_HOST_PREFIX), strict=False))
    return address if parsed is None else str(parsed)
