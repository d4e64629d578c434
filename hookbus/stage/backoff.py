"""How long to wait before trying again, and which Kafka errors are worth waiting for."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from hookbus.errors import HookbusError, KafkaUnavailableError

__all__ = ["Backoff", "is_outage", "is_transient"]

# Shortest first delay: a zero would retry in a busy loop.
_MIN_INITIAL_SECONDS = 0.001


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter: each delay is drawn from the upper half of
    ``initial * 2**n`` (at most ``cap``), so restarted instances do not retry in step. A new
    ``Backoff`` starts again from ``initial``: make one per operation retried."""

    initial: float
    cap: float
    _attempt: int = 0
    _random: random.Random = field(default_factory=random.SystemRandom)

    def __post_init__(self) -> None:
        self.initial = max(self.initial, _MIN_INITIAL_SECONDS)
        self.cap = max(self.cap, self.initial)

    def next_delay(self, at_least: float | None = None) -> float:
        """The next delay in seconds; never shorter than ``at_least``, the wait a destination
        asked for (``Retry-After``), which may exceed the cap."""
        ceiling = min(self.cap, self.initial * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return max(self._random.uniform(ceiling / 2, ceiling), at_least or 0.0)


def is_transient(error: BaseException) -> bool:
    """Whether a Kafka error may go away by itself (the broker is down, slow or moving a leader)."""
    if isinstance(error, KafkaUnavailableError):
        return True
    return isinstance(error, KafkaError) and (
        bool(error.retriable) or isinstance(error, KafkaTimeoutError | KafkaConnectionError)
    )


def is_outage(error: BaseException) -> bool:
    """Whether an error says that Kafka or a destination cannot be reached now, not that what was
    sent is bad: a retriable hookbus error, a transient Kafka error, a connection or a timeout
    (``OSError``). What an outage fails is retried without bound; dead-lettering it would empty
    the topic into the dead-letter topic while the database is down."""
    return is_transient(error) or isinstance(error, OSError) or (isinstance(error, HookbusError) and error.retriable)
