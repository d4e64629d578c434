"""Load shedding: which requests the gateway takes on, and the deadline each one is answered by.

Every webhook request is answered within ``gateway.answer_deadline_seconds`` of the moment
its headers arrived (stamped by the connection, :mod:`ingest.runner`). A gateway that let its
work queue up would answer late, after senders gave up: a sender that retries then sends
again into the queue, and one that never retries has lost its event although the gateway
could have refused it cleanly. So the gateway bounds its own work instead, and refuses what
it cannot do in time while refusing is still cheap, before reading the body:

- at most ``max_inflight_requests`` webhook requests are handled at once (shared by the
  ``--workers``, as the body budget is), so a frozen broker cannot pile up requests (and
  their bodies, tasks and producer queue) without bound;
- a request the event loop got to more than ``max_queue_seconds`` after its headers arrived
  finds the gateway behind (its CPU saturated): answering it at once is what lets the loop
  catch up.

A request over either bound is *shed*. A source that retries gets 503 ``overloaded`` with
Retry-After. A spooling source (a provider that never retries) must not be refused: its
request is still read (within the body budget), verified, and written to the spool without
waiting for Kafka; the spool write is durable, so it is answered 200.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from hookbus.config import HookbusConfig


@dataclass(frozen=True, slots=True)
class Ticket:
    """One admitted request: when it must be answered by, and until when it may wait for Kafka.

    Both are :func:`time.monotonic` instants. ``kafka_until`` is at or before ``now`` for a
    shed request of a spooling source: it goes straight to the spool.
    """

    answer_by: float
    kafka_until: float
    shed: bool

    def remaining(self) -> float:
        """Seconds left until the answer is due (negative once it is late)."""
        return self.answer_by - time.monotonic()


def headers_arrived_at(request: web.BaseRequest) -> float:
    """When the request's headers were parsed (monotonic), as stamped by the gateway's
    connection handler; now, for a request served by another runner (no stamp)."""
    stamp = getattr(request.protocol, "headers_arrived_at", None)
    return stamp if isinstance(stamp, float) else time.monotonic()


class Admission:
    """Counts the webhook requests being handled and says, before a body is read, whether one more fits."""

    def __init__(self, *, deadline: float, ack_timeout: float, max_queue: float, max_inflight: int) -> None:
        self._deadline = deadline
        self._ack_timeout = ack_timeout
        self._max_queue = max_queue
        self._max_inflight = max_inflight
        self._inflight = 0

    @classmethod
    def from_config(cls, config: HookbusConfig, processes: int) -> Admission:
        gateway = config.gateway
        return cls(
            deadline=gateway.answer_deadline_seconds,
            ack_timeout=gateway.ack_timeout_seconds,
            max_queue=gateway.max_queue_seconds,
            max_inflight=max(1, gateway.max_inflight_requests // max(1, processes)),
        )

    @property
    def inflight(self) -> int:
        return self._inflight

    def ticket(self, arrived_at: float) -> Ticket:
        """The deadline of a request whose headers arrived at ``arrived_at``, and whether it is shed.

        The Kafka wait ends ``ack_timeout`` after the headers arrived at the latest: what is
        left of the deadline is for the spool write and the answer.
        """
        now = time.monotonic()
        shed = self._inflight >= self._max_inflight or now - arrived_at > self._max_queue
        kafka_until = now if shed else arrived_at + self._ack_timeout
        return Ticket(answer_by=arrived_at + self._deadline, kafka_until=kafka_until, shed=shed)

    def enter(self) -> None:
        self._inflight += 1

    def leave(self) -> None:
        self._inflight -= 1
