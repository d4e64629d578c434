"""The HTTP sink: POST each event to one URL, signed with Standard Webhooks.

Events go out in the CloudEvents HTTP binding, binary (``ce-*`` headers, the data as the
body) or structured (the whole event as ``application/cloudevents+json``), with
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64 HMAC-SHA256>``
over ``{id}.{timestamp}.{body}``, signed once the request has a connection slot (so a
request queued behind slow ones never leaves with a stale timestamp; a retry is signed
afresh). Timeouts, connection errors, 408, 429 and 5xx are retried
(``Retry-After`` is honoured up to a cap); any other non-2xx answer, a redirect included,
rejects the event for good. Events sharing a partition key are sent one after another;
the others in parallel, up to ``concurrency`` requests at a time. Private and internal
addresses are refused (:mod:`sinks.ssrf`) unless ``allow_private_destinations`` is set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp.helpers import is_canonical_ipv4_address, is_ip_address
from yarl import URL

from hookbus.cloudevent import STRUCTURED_CONTENT_TYPE, CloudEvent, Mode
from hookbus.config import Secret, as_str
from hookbus.errors import ConfigError
from hookbus.settings import EXCLUSIVE_MINIMUM, MINIMUM, PARSE, as_choice, as_str_mapping
from hookbus.sink import BatchResult, Rejection, SinkContext, SinkType
from hookbus.tracecontext import TRACE_HEADERS
from sinks.ssrf import DestinationRefusedError, GuardedResolver, check_address, literal_address

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_RETRIED_STATUSES = frozenset({408, 429})
# CloudEvents HTTP binding: header values percent-encode space, '"', '%' and anything outside printable ASCII.
_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in '"%')


# What a host name may hold: a name nothing resolves (a space, a '%') would be retried forever.
_HOST_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def as_url(value: Any, key: str) -> str:
    """An http(s) URL the HTTP client will send to, checked as aiohttp parses it, so a URL it
    would refuse on every request (``http://127.1/``, a bad port) fails at startup instead."""
    url = as_str(value, key)
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(f"is not a valid URL ({exc})", key=key) from exc
    host = parsed.raw_host
    if parsed.scheme not in {"http", "https"} or not host:
        raise ConfigError("must be an http:// or https:// URL", key=key)
    if port is not None and not 0 < port < 65536:
        raise ConfigError("has a port outside 1-65535", key=key)
    if is_ip_address(host):
        # aiohttp refuses the legacy numeric forms (127.1, 2130706433) the OS would still map to an address.
        if ":" not in host and not is_canonical_ipv4_address(host):
            raise ConfigError(f"host {host} is not a canonical IPv4 address", key=key)
        if literal_address(host) is None:
            raise ConfigError(f"host {host} is not an IP address", key=key)
        return url
    if _legacy_ipv4(host):
        # Not an IP to aiohttp, but the resolver maps it to one (0x7f.1 is 127.0.0.1): an
        # address in disguise, which the destination guard would refuse on every request.
        raise ConfigError(f"host {host} is a legacy numeric IPv4 form: write the address as a.b.c.d", key=key)
    try:
        # How the resolver encodes the name; an empty or overlong label fails here.
        host.encode("idna")
    except UnicodeError as exc:
        raise ConfigError(f"host {host!r} is not a valid host name", key=key) from exc
    if not _HOST_NAME.fullmatch(host):
        raise ConfigError(f"host {host!r} is not a valid host name", key=key)
    return url


def _legacy_ipv4(host: str) -> bool:
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def as_headers(value: Any, key: str) -> dict[str, str]:
    """Extra request headers; a name or value HTTP cannot carry would fail every request."""
    headers = as_str_mapping(value, key)
    for name, text in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a valid HTTP header name", key=key)
        if any(char in text for char in "\r\n\x00"):
            raise ConfigError(f"the value of {name} holds a line break or NUL", key=key)
    return headers


def as_webhook_secret(value: Any, key: str) -> Secret:
    """A Standard Webhooks secret, ``whsec_<base64>``; the key is the decoded bytes."""
    text = as_str(value, key)
    if not text.startswith(SECRET_PREFIX):
        raise ConfigError(f"must start with {SECRET_PREFIX} (Standard Webhooks)", key=key)
    try:
        decoded = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"is not base64 after {SECRET_PREFIX}", key=key) from exc
    if len(decoded) < 16:
        raise ConfigError("is shorter than 16 bytes", key=key)
    return Secret(decoded)


@dataclass(frozen=True, slots=True)
class HttpForwardSettings:
    url: str = field(metadata={PARSE: as_url})
    secret: Secret = field(metadata={PARSE: as_webhook_secret})
    mode: str = field(default=Mode.BINARY.value, metadata={PARSE: as_choice(*(mode.value for mode in Mode))})
    headers: Mapping[str, str] = field(default_factory=dict, metadata={PARSE: as_headers})
    timeout_seconds: float = field(default=10.0, metadata={EXCLUSIVE_MINIMUM: 0})
    concurrency: int = field(default=8, metadata={MINIMUM: 1})
    ordered_by_partition_key: bool = True
    max_retry_after_seconds: float = 300.0
    allow_private_destinations: bool = False

    def __post_init__(self) -> None:
        # An IP literal never goes through the resolver, so it is checked here, at startup.
        address = literal_address(urlsplit(self.url).hostname or "")
        if address is not None and not self.allow_private_destinations:
            try:
                check_address(str(address))
            except DestinationRefusedError as exc:
                raise ConfigError(exc.detail, key="url") from exc


def sign(secret: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value (Standard Webhooks, version 1)."""
    digest = hmac.new(secret, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def encode(event: CloudEvent, mode: Mode) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in the CloudEvents HTTP binding, with the trace context the
    webhook arrived with as W3C ``traceparent``/``tracestate`` headers, so the receiver's trace
    continues the sender's."""
    trace = {name: str(event.extensions[name]) for name in TRACE_HEADERS if name in event.extensions}
    if mode is Mode.STRUCTURED:
        return {"content-type": STRUCTURED_CONTENT_TYPE, **trace}, event.to_json()
    headers = {"content-type": event.datacontenttype, **trace}
    for name, value in event.attributes().items():
        if name != "datacontenttype":
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            headers[f"ce-{name}"] = quote(text, safe=_HEADER_SAFE)
    return headers, event.data_bytes()


def retry_after_seconds(value: str | None, *, cap: float) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from now, at most ``cap``."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


class _Outcome(Enum):
    WRITTEN = "written"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(slots=True)
class _Tally:
    written: list[CloudEvent] = field(default_factory=list)
    retry: list[CloudEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    retry_after: float | None = None

    def result(self) -> BatchResult:
        return BatchResult(self.written, self.retry, self.rejected, self.retry_after)


class HttpForwardSink:
    def __init__(self, settings: HttpForwardSettings, context: SinkContext) -> None:
        self._settings = settings
        self._mode = Mode(settings.mode)
        parts = urlsplit(settings.url)
        self._log = context.log.bind(destination=f"{parts.scheme}://{parts.netloc}")
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)

    async def open(self) -> None:
        settings = self._settings
        connector = aiohttp.TCPConnector(
            limit=settings.concurrency,
            resolver=None if settings.allow_private_destinations else GuardedResolver(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds),
            headers=dict(settings.headers),
        )

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        tally = _Tally()
        async with asyncio.TaskGroup() as group:
            for chain in self._chains(batch):
                group.create_task(self._send_chain(chain, tally))
        return tally.result()

    def _chains(self, batch: Sequence[CloudEvent]) -> list[list[CloudEvent]]:
        """Events that must go out one after another: those sharing a partition key, in batch order."""
        if not self._settings.ordered_by_partition_key:
            return [[event] for event in batch]
        chains: dict[str, list[CloudEvent]] = {}
        unkeyed: list[list[CloudEvent]] = []
        for event in batch:
            key = event.partition_key
            if key is None:
                unkeyed.append([event])
            else:
                chains.setdefault(key, []).append(event)
        return [*chains.values(), *unkeyed]

    async def _send_chain(self, chain: list[CloudEvent], tally: _Tally) -> None:
        for index, event in enumerate(chain):
            if await self._send(event, tally) is _Outcome.RETRY:
                # The ones after it wait, so the destination never sees them out of order.
                tally.retry.extend(chain[index + 1 :])
                return

    async def _send(self, event: CloudEvent, tally: _Tally) -> _Outcome:
        if self._session is None:
            raise RuntimeError("the HTTP sink is not open")
        headers, body = encode(event, self._mode)
        headers["webhook-id"] = event.id
        try:
            # Signed only once a slot is free: a request queued behind slow ones would otherwise
            # arrive with a stale webhook-timestamp, and receivers refuse those (replay protection).
            async with self._slots:
                self._sign(headers, event.id, body)
                async with self._session.post(
                    self._settings.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    status = response.status
                    retry_after = retry_after_seconds(
                        response.headers.get("Retry-After"), cap=self._settings.max_retry_after_seconds
                    )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DestinationRefusedError):
                tally.rejected.append(Rejection(event, exc.os_error.reason, exc.os_error.detail))
                return _Outcome.REJECTED
            return self._retry(event, tally, f"connection failed: {type(exc).__name__}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._retry(event, tally, f"request failed: {type(exc).__name__}")
        if 200 <= status < 300:
            tally.written.append(event)
            return _Outcome.WRITTEN
        if status >= 500 or status in _RETRIED_STATUSES:
            if retry_after is not None:
                tally.retry_after = max(tally.retry_after or 0.0, retry_after)
            return self._retry(event, tally, f"HTTP {status}")
        tally.rejected.append(Rejection(event, f"http_{status}", f"the destination answered HTTP {status}"))
        return _Outcome.REJECTED

    def _sign(self, headers: dict[str, str], event_id: str, body: bytes) -> None:
        timestamp = int(time.time())
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = sign(self._settings.secret.value, event_id, timestamp, body)

    def _retry(self, event: CloudEvent, tally: _Tally, why: str) -> _Outcome:
        self._log.info("sink_delivery_deferred", event_id=event.id, why=why)
        tally.retry.append(event)
        return _Outcome.RETRY

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


SINK = SinkType(
    name="http",
    settings=HttpForwardSettings,
    create=HttpForwardSink,
    description="POST each event to a URL (CloudEvents HTTP binding), signed with Standard Webhooks.",
)
