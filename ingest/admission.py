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
- a request that waited more than ``max_queue_seconds`` finds the gateway behind (its CPU
  saturated): answering it at once is what lets the loop catch up. Its wait is the time from
  its headers' parsing to its handler, plus how long its bytes waited in the kernel before the
  gateway read them (:class:`QueueWait`: the event loop's lateness, the accept queue).

A request over either bound is *shed*. A source that retries gets 503 ``overloaded`` with
Retry-After. A spooling source (a provider that never retries) must not be refused: its
request is still read (within the body budget), verified, and written to the spool without
waiting for Kafka; the spool write is durable, so it is answered 200.
"""

from __future__ import annotations

import asyncio
import socket
import sys
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


TICK_SECONDS = 0.05
# Below this rate the accept queue is judged as if requests arrived this fast: a few
# connections queued after an idle spell are no sign of being behind.
MIN_ARRIVAL_RATE = 100.0
# The weight of the latest tick in the smoothed arrival rate.
RATE_SMOOTHING = 0.2
# struct tcp_info (linux/tcp.h): eight one-byte fields, then rto, ato, snd_mss, rcv_mss
# (u32), then tcpi_unacked, which for a listening socket is its accept queue's length.
_TCP_INFO_BYTES = 104
_UNACKED = slice(24, 28)


def accept_queue_length(listening: socket.socket) -> int:
    """Connections the kernel holds for ``listening`` that the gateway has not accepted yet (0 where unknown)."""
    tcp_info = getattr(socket, "TCP_INFO", None)
    if tcp_info is None or listening.family not in (socket.AF_INET, socket.AF_INET6):
        return 0
    try:
        info = listening.getsockopt(socket.IPPROTO_TCP, tcp_info, _TCP_INFO_BYTES)
    except OSError:
        return 0
    return int.from_bytes(info[_UNACKED], sys.byteorder)


class QueueWait:
    """How long a request's bytes wait before the gateway reads them, estimated every ``TICK_SECONDS``.

    Two waits are invisible to a request's handler. A loop that runs late (its timer fires
    late) also reads its sockets late. And connections the loop has not accepted yet wait in
    the kernel's accept queue: its length over the rate requests arrive is how long the last
    one will wait. A stall of ``L`` seconds left bytes waiting for up to ``L``; they are read as
    the loop catches up, so the estimate falls by the time that has passed since, rather than
    at once to the next tick's.

    Started on the running loop by :meth:`start` (the gateway's startup), stopped by :meth:`stop`.
    """

    def __init__(self) -> None:
        self._seconds = 0.0
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._listening: list[socket.socket] = []
        self._arrived = 0
        self._arrival_rate = 0.0

    @property
    def seconds(self) -> float:
        """How long a request's bytes may have waited now; 0 before the first tick."""
        return self._seconds

    def watch(self, listening: list[socket.socket]) -> None:
        """Count the accept queues of these listening sockets in."""
        self._listening = listening

    def arrived(self) -> None:
        """One more request reached the gateway (for the arrival rate)."""
        self._arrived += 1

    def start(self) -> None:
        self._due = time.monotonic() + TICK_SECONDS
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        late = max(0.0, time.monotonic() - self._due)
        elapsed = TICK_SECONDS + late
        rate = self._arrived / elapsed
        self._arrived = 0
        self._arrival_rate = RATE_SMOOTHING * rate + (1 - RATE_SMOOTHING) * self._arrival_rate
        queued = sum(accept_queue_length(listening) for listening in self._listening)
        accept_wait = queued / max(self._arrival_rate, MIN_ARRIVAL_RATE)
        self._seconds = max(late, accept_wait, self._seconds - elapsed)
        self.start()


class Admission:
    """Counts the webhook requests being handled and says, before a body is read, whether one more fits."""

    def __init__(
        self, *, deadline: float, ack_timeout: float, max_queue: float, max_inflight: int, wait: QueueWait | None = None
    ) -> None:
        self.wait = wait if wait is not None else QueueWait()
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
        self.wait.arrived()
        waited = now - arrived_at + self.wait.seconds
        shed = self._inflight >= self._max_inflight or waited > self._max_queue
        kafka_until = now if shed else arrived_at + self._ack_timeout
        return Ticket(answer_by=arrived_at + self._deadline, kafka_until=kafka_until, shed=shed)

    def enter(self) -> None:
        self._inflight += 1

    def leave(self) -> None:
        self._inflight -= 1
