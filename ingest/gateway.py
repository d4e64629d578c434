"""The gateway's HTTP application: ``/webhooks/{source}``, ``/healthz`` and ``/readyz``.

A webhook request goes through seven steps, each of which may answer on its own. The first
four come before the body is read or ``100 Continue`` is sent: find the source (404), take a
token of its rate limit (429), let :func:`ingest.decision.decide_head` make every check that
needs no body (method, declared size, IP allowlist, API key, required headers), and be
admitted (:mod:`ingest.admission`: 503 ``overloaded`` when the gateway is over its bounds,
unless the source spools) with a share of the in-flight body budget (503 ``overloaded``,
:mod:`ingest.budget`). Then read the body within the source's size limit (413 while
reading), let :func:`ingest.decision.decide_body` verify the raw bytes, and hand the accepted
request to the :class:`~ingest.publisher.Publisher`. The sender gets 200 with the ingest id
only once the publisher says the event is durable (in Kafka, or in the local spool), else 503
with Retry-After, and either within the answer deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import orjson
from aiohttp import HttpVersion11, hdrs, web

from hookbus.config import HookbusConfig, SourceConfig
from hookbus.errors import HookbusError
from hookbus.logging import get_logger
from hookbus.ops_server import SPOOL_DRAINING, readiness_body
from hookbus.rawevent import parse_query, without_credentials
from hookbus.request import Accept, RawRequest, Reason, Reject, RequestHead
from hookbus.requestlog import RawPointer, RequestLogEntry, clip_source, logged_headers, logged_query
from ingest.admission import Admission, Ticket, headers_arrived_at
from ingest.budget import BodyBudget, BodyShare, per_process_budget
from ingest.capture import capture
from ingest.clientaddr import client_address
from ingest.decision import decide_body, decide_head, kept_headers, too_large
from ingest.errors import described
from ingest.keys import entity_of, raw_keys
from ingest.metrics import ACCEPT, GatewayMetrics, SpoolGauges, sampling
from ingest.publisher import Publisher, Receipt, SpoolReceipt, Stored
from ingest.ratelimit import RateLimiter
from ingest.requestlog import RefusedBodyBudget, RequestLogWriter
from ingest.spool import SpoolDepth

Clock = Callable[[], float]
Backlog = Callable[[], SpoolDepth]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WEBHOOK_PATH = "/webhooks/{source}"
RETRY_AFTER_SECONDS = 5
READ_CHUNK_BYTES = 64 * 1024
# Reasons of refusals that come from reading the request rather than from judging it.
REQUEST_TIMEOUT = "request_timeout"
BAD_REQUEST = "bad_request"
UNEXPECTED_ERROR = "unexpected_error"
EXPECTATION_FAILED = "expectation_failed"
OVERLOADED = "overloaded"
ANSWER_DEADLINE = "answer_deadline"
CONTINUE_EXPECTATION = "100-continue"
CONTINUE_LINE = b"HTTP/1.1 100 Continue\r\n\r\n"
ROUTER_REASONS: Mapping[int, str] = {
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.METHOD_NOT_ALLOWED: Reason.METHOD_NOT_ALLOWED,
}
"""Reasons of the refusals aiohttp's router makes outside the webhook route."""

STATUS_BY_REASON: Mapping[str, HTTPStatus] = {
    Reason.UNKNOWN_SOURCE: HTTPStatus.NOT_FOUND,
    Reason.MISSING_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    Reason.MALFORMED_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    Reason.BAD_SIGNATURE: HTTPStatus.UNAUTHORIZED,
    Reason.STALE_TIMESTAMP: HTTPStatus.UNAUTHORIZED,
    Reason.BAD_API_KEY: HTTPStatus.UNAUTHORIZED,
    Reason.IP_NOT_ALLOWED: HTTPStatus.FORBIDDEN,
    Reason.METHOD_NOT_ALLOWED: HTTPStatus.METHOD_NOT_ALLOWED,
    Reason.HEADER_NOT_ALLOWED: HTTPStatus.BAD_REQUEST,
    Reason.TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Reason.RATE_LIMITED: HTTPStatus.TOO_MANY_REQUESTS,
    REQUEST_TIMEOUT: HTTPStatus.REQUEST_TIMEOUT,
    BAD_REQUEST: HTTPStatus.BAD_REQUEST,
    EXPECTATION_FAILED: HTTPStatus.EXPECTATION_FAILED,
    OVERLOADED: HTTPStatus.SERVICE_UNAVAILABLE,
    ANSWER_DEADLINE: HTTPStatus.SERVICE_UNAVAILABLE,
}
"""The HTTP status of every refusal reason; clients may rely on both."""


_MILLISECONDS_MASK = (1 << 48) - 1
_VERSION_AND_VARIANT = 0x7 << 76 | 0x2 << 62
_RANDOM_MASK = ((1 << 80) - 1) & ~(0xF << 76 | 0x3 << 62)


def new_ingest_id() -> str:
    """A time-ordered unique id in the UUIDv7 layout (RFC 9562), in its canonical text form.

    48 bits of Unix milliseconds, then 74 random bits: ids sort by the time they were issued,
    which keeps logs and the raw topic easy to read, and the random bits keep them unique
    across workers and hosts without coordination.
    """
    milliseconds = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (milliseconds & _MILLISECONDS_MASK) << 80 | (random_bits & _RANDOM_MASK) | _VERSION_AND_VARIANT
    # What str(uuid.UUID(int=value)) gives, without building the UUID object.
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def json_response(
    document: Mapping[str, object], *, status: int = HTTPStatus.OK, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``document`` as an application/json response, encoded with orjson."""
    return web.Response(
        body=orjson.dumps(document), status=status, headers=headers, content_type="application/json", charset="utf-8"
    )


def json_error(
    status: HTTPStatus, reason: str, detail: str, *, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The JSON body every refusal carries: a stable reason for machines, a detail for people."""
    return json_response({"error": reason, "detail": detail}, status=status, headers=headers)


def retry_later(reason: str, detail: str) -> web.Response:
    """503 with Retry-After: nothing was stored, and the sender should send again."""
    return json_error(HTTPStatus.SERVICE_UNAVAILABLE, reason, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request turned away. ``close`` ends the connection: set when the body was not read
    to its end, so the sender stops sending it."""

    reason: str
    detail: str
    close: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        response = json_error(STATUS_BY_REASON[self.reason], self.reason, self.detail, headers=self.headers)
        if self.close:
            response.force_close()
        return response


OVERLOADED_REFUSAL = Refusal(
    OVERLOADED,
    "the gateway holds as many request bodies as it may; send it again later",
    close=True,
    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
)
"""Past the in-flight body budget (:mod:`ingest.budget`): nothing was read, nothing stored."""


def shed(*, close: bool) -> Refusal:
    """Over the gateway's bounds (:mod:`ingest.admission`), before the body was read. The
    connection is kept when the body is already in (it costs nothing to skip), so a sender
    turned away does not also pay for a new connection."""
    return Refusal(
        OVERLOADED,
        "the gateway has as much work as it can answer in time; send it again later",
        close=close,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


PAST_THE_DEADLINE = Refusal(
    ANSWER_DEADLINE,
    "the request was not stored within the gateway's answer deadline; send it again later",
    close=True,
    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
)
"""The event was not stored by the answer deadline (a spool write cut short may still complete:
a sender that retries may then cause a duplicate)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one webhook request ended: its response and what its log line and request-log entry say of it."""

    response: web.Response
    verdict: str
    reason: str | None = None
    client_addr: str | None = None
    ingest_id: str | None = None
    stored: Stored | None = None
    detail: str | None = None
    body: bytes | None = None
    """The body, when it was read and the request refused (the request log may keep a prefix)."""

    @property
    def spooled(self) -> bool:
        return isinstance(self.stored, SpoolReceipt)

    @classmethod
    def refused(cls, refusal: Refusal, client_addr: str | None = None, *, body: bytes | None = None) -> Outcome:
        return cls(refusal.response(), "reject", refusal.reason, client_addr, detail=refusal.detail, body=body)


class Gateway:
    """The webhook handler and the probes, built once from the configuration."""

    def __init__(
        self,
        config: HookbusConfig,
        *,
        publisher: Publisher,
        clock: Clock,
        rate_limiter: RateLimiter,
        backlog: Backlog | None,
        budget: BodyBudget,
        metrics: GatewayMetrics,
        admission: Admission,
        request_log: RequestLogWriter | None = None,
    ) -> None:
        self._config = config
        self._publisher = publisher
        self._clock = clock
        self._rate_limiter = rate_limiter
        self._budget = budget
        self._admission = admission
        self._backlog = backlog
        self._sources = {source.name: source for source in config.sources}
        self._kept_headers = {source.name: kept_headers(source) for source in config.sources}
        self._raw_keys = raw_keys(config.sources)
        self._metrics = metrics
        self._log = get_logger(service="gateway")
        self._request_log = request_log
        self._refused_bodies = RefusedBodyBudget(config.request_log)

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        outcome = await self._handle(request)
        status = outcome.response.status
        seconds = time.monotonic() - started
        source = request.match_info["source"]
        self._metrics.source(source).answered(outcome.verdict, outcome.reason, status, seconds)
        self._log.log(
            logging.WARNING if status >= HTTPStatus.INTERNAL_SERVER_ERROR else logging.INFO,
            "request",
            method=request.method,
            source=source,
            verdict=outcome.verdict,
            reason=outcome.reason,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            ingest_id=outcome.ingest_id,
            client_addr=outcome.client_addr,
            spooled=outcome.spooled,
        )
        if self._request_log is not None:
            self._request_log.record(self._entry(request, outcome, seconds))
        return outcome.response

    def _entry(self, request: web.Request, outcome: Outcome, seconds: float) -> RequestLogEntry:
        name = request.match_info["source"]
        source = self._sources.get(name)
        body, omitted = outcome.body, None
        prefix = None if body is None else self._refused_bodies.prefix(body)
        if outcome.verdict == "accept":
            omitted = "accepted"
        elif body and prefix is None:
            omitted = "budget"
        stored = outcome.stored
        raw = None
        if isinstance(stored, Receipt):
            raw = RawPointer(stored.topic, stored.partition, stored.offset)
        elif isinstance(stored, SpoolReceipt):
            raw = RawPointer(self._config.kafka.raw_topic, spooled=True)
        return RequestLogEntry(
            id=outcome.ingest_id or new_ingest_id(),
            time=self._clock(),
            source=clip_source(name),
            known_source=source is not None,
            provider=None if source is None else source.provider,
            method=request.method,
            client_addr=outcome.client_addr,
            verdict=outcome.verdict,
            reason=outcome.reason,
            detail=outcome.detail,
            status=outcome.response.status,
            size=len(body) if body is not None else request.content_length,
            duration_ms=round(seconds * 1000, 3),
            headers=logged_headers(request.headers.items()),
            query=logged_query(without_credentials(parse_query(request.rel_url.raw_query_string).items()).items()),
            ingest_id=outcome.ingest_id,
            raw=raw,
            body_prefix=prefix,
            body_omitted=omitted,
        )

    async def _handle(self, request: web.Request) -> Outcome:
        arrived_at = headers_arrived_at(request)
        source = self._sources.get(request.match_info["source"])
        if source is None:
            return Outcome.refused(Refusal(Reason.UNKNOWN_SOURCE, "no source has this name", close=True))
        retry_after = self._rate_limiter.retry_after(source.name)
        if retry_after is not None:
            return Outcome.refused(
                Refusal(
                    Reason.RATE_LIMITED,
                    "the source sends faster than its rate limit",
                    close=True,
                    headers={"Retry-After": str(retry_after)},
                )
            )
        forwarded_for = request.headers.getall("X-Forwarded-For", None)
        client_addr = client_address(
            request.remote, ",".join(forwarded_for) if forwarded_for else None, self._config.trusted_proxies
        )
        head = RequestHead(
            method=request.method,
            client_addr=client_addr,
            headers=request.headers,
            # Parsed here rather than by yarl, which replaces bytes that are not UTF-8: the
            # API key is judged, and the rest kept, on what the sender sent.
            query=parse_query(request.rel_url.raw_query_string),
            declared_length=request.content_length,
        )
        # Everything that can be judged without the body is judged before a byte of it is
        # read (or invited with 100 Continue): a refused sender cannot make the gateway hold
        # its body, and closing the connection stops it from sending the rest.
        rejected = decide_head(source, head)
        if rejected is not None:
            return Outcome.refused(_refusal(source, rejected, close=not request.content.is_eof()), client_addr)
        ticket = self._admission.ticket(arrived_at)
        if ticket.shed and not source.spool:
            return Outcome.refused(shed(close=not request.content.is_eof()), client_addr)
        share = self._budget.reserve(head.declared_length or 0)
        if share is None:
            return Outcome.refused(OVERLOADED_REFUSAL, client_addr)
        self._admission.enter()
        try:
            return await self._read_and_publish(request, source, head, share, ticket)
        finally:
            self._admission.leave()
            share.release()

    async def _read_and_publish(
        self, request: web.Request, source: SourceConfig, head: RequestHead, share: BodyShare, ticket: Ticket
    ) -> Outcome:
        refused = await _answer_expectation(request)
        if refused is not None:
            return Outcome.refused(refused, head.client_addr)
        # The body is due by the answer deadline too: one that is not in by then gets 408.
        read_timeout = min(self._config.gateway.read_timeout_seconds, ticket.remaining())
        body = await _read_body(request, source, read_timeout, share)
        if isinstance(body, Refusal):
            return Outcome.refused(body, head.client_addr)
        self._metrics.source(source.name).body_bytes.observe(len(body))

        now = self._clock()
        raw = head.with_body(body)
        verdict = decide_body(source, raw, now)
        if isinstance(verdict, Reject):
            return Outcome.refused(_refusal(source, verdict), head.client_addr, body=body)
        started = time.monotonic()
        outcome = await self._publish(source, raw, verdict, now, ticket)
        self._metrics.source(source.name).published(
            accepted=outcome.verdict == ACCEPT, spooled=outcome.spooled, seconds=time.monotonic() - started
        )
        return outcome

    async def _publish(
        self, source: SourceConfig, raw: RawRequest, verdict: Accept, received_at: float, ticket: Ticket
    ) -> Outcome:
        ingest_id = new_ingest_id()
        entity = entity_of(source.name, self._raw_keys.get(source.name), raw.body, raw.headers)
        try:
            event = capture(
                source, raw, verdict.auth, received_at, ingest_id, self._kept_headers[source.name], entity=entity
            )
            async with asyncio.timeout(ticket.remaining()):
                stored = await self._publisher.publish(event, kafka_until=ticket.kafka_until)
        except TimeoutError:
            return Outcome(PAST_THE_DEADLINE.response(), "failed", ANSWER_DEADLINE, raw.client_addr, ingest_id)
        except HookbusError as exc:
            if exc.retriable or exc.reason not in STATUS_BY_REASON:
                response = retry_later(exc.reason, "the request was not stored; send it again later")
            else:
                response = Refusal(exc.reason, exc.detail).response()
            return Outcome(response, "failed", exc.reason, raw.client_addr, ingest_id, detail=exc.detail)
        except Exception as exc:
            # A bug, not Kafka: the publisher already spooled what a spooling source sent, so
            # what is left was not stored, and the sender is asked to retry.
            self._log.error("publish_failed", source=source.name, ingest_id=ingest_id, **described(exc))
            response = retry_later(UNEXPECTED_ERROR, "the request was not stored; send it again later")
            return Outcome(response, "failed", UNEXPECTED_ERROR, raw.client_addr, ingest_id)
        return Outcome(json_response({"id": ingest_id}), "accept", None, raw.client_addr, ingest_id, stored)

    async def healthz(self, _: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def not_ready_reasons(self) -> list[str]:
        """What keeps a publish from succeeding now, and whether the spool still drains
        (:mod:`hookbus.ops_server`; the ops server asks too)."""
        reasons = await self._publisher.not_ready_reasons()
        if self._backlog is not None and self._backlog().records:
            reasons = [*reasons, SPOOL_DRAINING]
        return reasons

    async def readyz(self, _: web.Request) -> web.Response:
        """200 when nothing keeps a publish from succeeding, else 503; either way the reasons
        (:mod:`hookbus.ops_server`) and the spool's depth when there is a spool."""
        spool = {}
        reasons = await self.not_ready_reasons()
        if self._backlog is not None:
            depth = self._backlog()
            spool = {"spool": {"records": depth.records, "bytes": depth.bytes}}
        status, readiness = readiness_body(reasons)
        if status is HTTPStatus.OK:
            return json_response({"status": "ready", **readiness, **spool})
        error, detail = (
            ("spool_draining", "the spool holds records Kafka has not acknowledged yet")
            if reasons == [SPOOL_DRAINING]
            else ("kafka_unavailable", "Kafka does not answer")
        )
        return json_response(
            {"error": error, "detail": detail, **readiness, **spool},
            status=status,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _refusal(source: SourceConfig, rejected: Reject, *, close: bool = False) -> Refusal:
    allow = {"Allow": ", ".join(source.methods)} if rejected.reason is Reason.METHOD_NOT_ALLOWED else {}
    return Refusal(rejected.reason, rejected.detail, close=close, headers=allow)


def _too_large(source: SourceConfig) -> Refusal:
    return _refusal(source, too_large(source), close=True)


async def _continue_later(request: web.Request) -> None:
    """The webhook route's ``expect_handler``: aiohttp's default answers ``100 Continue`` before
    the handler runs, which invites the body before any check; the handler answers instead."""


async def _answer_expectation(request: web.Request) -> Refusal | None:
    """Invite the body with ``100 Continue`` when the sender waits for it (what aiohttp's own
    expect handler does, but after the checks); an expectation other than 100-continue is
    refused with 417, as aiohttp would."""
    expect = request.headers.get(hdrs.EXPECT)
    if expect is None or request.version != HttpVersion11:
        return None
    if expect.lower() != CONTINUE_EXPECTATION:
        return Refusal(EXPECTATION_FAILED, "the only expectation understood is 100-continue", close=True)
    if request.content.is_eof():
        return None  # the body came without waiting for the invitation
    try:
        await request.writer.write(CONTINUE_LINE)
    except ConnectionError:
        return Refusal(BAD_REQUEST, "the connection closed before the body was sent", close=True)
    # As aiohttp does: the response proper has not started.
    request.writer.output_size = 0
    return None


def _over_a_limit(source: SourceConfig, size: int, share: BodyShare) -> Refusal | None:
    if size > source.max_body_bytes:
        return _too_large(source)
    if not share.cover(size):
        return OVERLOADED_REFUSAL
    return None


async def _read_body(request: web.Request, source: SourceConfig, timeout: float, share: BodyShare) -> bytes | Refusal:
    """The body, read chunk by chunk: one that grows past the source's limit, or past what the
    in-flight budget has room for (a chunked body has no share until it arrives), is refused
    before it is all in memory, and the rest of it is never read."""
    body = bytearray()
    try:
        if request.content.is_eof():
            # The whole body came in with the headers (the usual small webhook): nothing is
            # left to wait for, so neither a timer nor a chunk loop.
            whole = request.content.read_nowait()
            return _over_a_limit(source, len(whole), share) or whole
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
                body += chunk
                if (refused := _over_a_limit(source, len(body), share)) is not None:
                    return refused
    except TimeoutError:
        return Refusal(REQUEST_TIMEOUT, f"the body took longer than {max(0.0, timeout):.3g} s to arrive", close=True)
    except (web.RequestPayloadError, ConnectionError):
        return Refusal(BAD_REQUEST, "the body ended early or its framing is broken", close=True)
    return bytes(body)


@web.middleware
async def last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answers 503 (the sender retries) instead of a 500 with a traceback, should a bug ever
    let an exception out of a handler. Only the exception's type and where it was raised are
    logged: its message could quote the request."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        # The router's own refusals (no such path; a method /healthz does not take) carry
        # the same JSON body as the gateway's.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        reason = ROUTER_REASONS.get(exc.status, BAD_REQUEST)
        return json_error(HTTPStatus(exc.status), reason, exc.reason, headers=allow)
    except Exception as exc:
        get_logger(service="gateway").error(
            UNEXPECTED_ERROR, method=request.method, path=request.path, **described(exc)
        )
        return retry_later(UNEXPECTED_ERROR, "the gateway could not handle the request; send it again later")


class InFlight:
    """Counts the requests being handled, so that a drain can wait for the last answer.

    aiohttp's own graceful shutdown stops reading from connections at once, which would
    strand a request whose body is still arriving; the gateway waits here instead, with the
    listening socket already closed, and only then lets aiohttp close the connections.
    """

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._draining = False

    @property
    def count(self) -> int:
        return self._count

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._count += 1
        self._idle.clear()
        try:
            response = await handler(request)
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()
        if self._draining:
            # No next request on this connection: the sender opens a new one, elsewhere.
            response.force_close()
        return response

    async def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no request is being handled; whether that happened."""
        self._draining = True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)
READINESS: web.AppKey[Gateway] = web.AppKey("readiness", Gateway)
ADMISSION: web.AppKey[Admission] = web.AppKey("admission", Admission)


def build_app(
    config: HookbusConfig,
    *,
    publisher: Publisher,
    clock: Clock = time.time,
    rate_clock: Clock = time.monotonic,
    backlog: Backlog | None = None,
    processes: int = 1,
    spool: SpoolGauges | None = None,
    request_log: RequestLogWriter | None = None,
) -> web.Application:
    """The aiohttp application for ``config``; the caller owns the publisher's lifecycle.

    ``clock`` is the wall clock requests are timed by (signature tolerances), ``rate_clock``
    the monotonic clock of the rate limits, ``backlog`` the spool's depth for ``/readyz``,
    ``processes`` how many gateway processes share the in-flight body budget and request bound,
    ``spool`` the spool's gauges (:mod:`ingest.metrics`). ``app[IN_FLIGHT]`` tells how many
    requests are being handled, for draining; ``app[READINESS]`` what keeps the gateway from being
    ready; ``app[ADMISSION]`` is told the listening sockets, whose accept queues it watches.
    """
    rate_limiter = RateLimiter(config.sources, clock=rate_clock)
    budget = BodyBudget(per_process_budget(config, processes))
    metrics = GatewayMetrics(source.name for source in config.sources)
    admission = Admission.from_config(config, processes)
    gateway = Gateway(
        config,
        publisher=publisher,
        clock=clock,
        rate_limiter=rate_limiter,
        backlog=backlog,
        budget=budget,
        metrics=metrics,
        admission=admission,
        request_log=request_log,
    )
    in_flight = InFlight()
    app = web.Application(middlewares=[in_flight.middleware, last_resort])
    app[IN_FLIGHT] = in_flight
    app[READINESS] = gateway
    app.cleanup_ctx.append(sampling(lambda: in_flight.count, lambda: budget.held, spool))
    app[ADMISSION] = admission

    async def watch_the_loop(_: web.Application) -> AsyncIterator[None]:
        admission.wait.start()
        yield
        admission.wait.stop()

    app.cleanup_ctx.append(watch_the_loop)
    # Every method reaches the handler, so `decide` answers 405 with the source's Allow header.
    app.router.add_route("*", WEBHOOK_PATH, gateway.webhook, expect_handler=_continue_later)
    app.router.add_get("/healthz", gateway.healthz)
    app.router.add_get("/readyz", gateway.readyz)
    return app
