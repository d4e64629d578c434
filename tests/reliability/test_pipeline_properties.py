"""A property of the live pipeline: every authentic request answered 2xx ends exactly once.

The gateway, the normalizer and the PostgreSQL sink run as processes (the harness's
:class:`~tests.reliability.harness.Pipeline`) on the shared Kafka broker, one source for each
of hookbus's own providers (``providers.BUILT_IN``; a generic source twice: as its examples
configure one, and with nothing but an API key). Hypothesis plans a batch of requests, every
one correctly signed with its source's credentials by the provider's own examples, with
hostile content: nesting hundreds of levels deep, numbers no float holds, NUL, lone
surrogates as JSON escapes, invalid UTF-8 in the body and in kept headers (an extra part of
a signature header, a Content-Type with a ``\\xff`` byte), unknown event types, missing
fields, bodies as large as the source accepts, forms and XML, bytes that are no format.

The whole batch is planned first, then sent (header values as raw bytes, on loopback), then
accounted, by the gateway's ingest id (the 2xx answer's ``id``): each must have exactly
one row (its event's ``ingestid``) or exactly one dead letter with a reason (on the
normalizer's ``hookbus.dlq``, by the original record's ``hookbus-ingest-id``, or on the sink's
own ``<events>.dlq.pg``, by the event's ``ce_ingestid``) - nothing lost, nothing twice. Once
they have all ended, one valid event per source must become a row within a few seconds: a
poison record that stalls a stage, or kills it, shows there. The counts go into
docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from hookbus.provider import provider
from hookbus.stage.deadletter import REASON_HEADER, STAGE_HEADER
from providers import BUILT_IN
from providers.officernd.examples import SIGNATURE_HEADER as OFFICERND_SIGNATURE_HEADER
from providers.standard_webhooks.examples import SIGNATURE_HEADER as STANDARD_WEBHOOKS_SIGNATURE_HEADER
from tests.reliability.harness import (
    FULL_MODE,
    LOOPBACK,
    SOURCES,
    KafkaRecord,
    Pipeline,
    RawAnswer,
    Running,
    SignedSource,
    fresh_topics,
    pipeline_document,
    post_bytes,
    read_topic,
    sink_dead_letter_topic,
    table_rows,
)
from tests.reliability.report import PROPERTIES, Finding
from tests.support import free_port
from tools.send import webhook_url

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900 if FULL_MODE else 300)]

# Batches of planned requests: CI sends some 100, full mode 3,000.
BATCHES = 100 if FULL_MODE else 10
REQUESTS_PER_BATCH = 30 if FULL_MODE else 10
MAX_BIG_BODIES = 12 if FULL_MODE else 3
MAX_BODY_BYTES = 256 * 1024
SEED_ENV = "HOOKBUS_RELIABILITY_SEED"
SEED = int(os.environ.get(SEED_ENV) or (random.randrange(2**32) if FULL_MODE else 11))
"""The Hypothesis seed: fixed in CI, fresh in full mode; printed, and settable to replay a run."""
CONCURRENT_REQUESTS = 6
VALID_DELIVERY_SECONDS = 10.0
"""A valid event sent once the hostile ones have ended must be a row within this long."""
SETTLE_TIMEOUT_SECONDS = 240.0 if FULL_MODE else 60.0
POLL_SECONDS = 1.0
LOG_EXCERPT_CHARS = 3000

STANDARD_WEBHOOKS_SECRET = "5f0c" * 16  # 64 hex digits, which are base64 too
BARE_GENERIC = SignedSource("generic_bare", "generic", api_key="rel-generic-bare-key-1c7e5a3f08")
PROPERTY_SOURCES = (
    *SOURCES,
    SignedSource("generic", "generic", secret="rel-generic-secret-3e9d0a7c61", api_key="rel-generic-key-8b2f4d1e90"),
    SignedSource("standard_webhooks", "standard_webhooks", secret=STANDARD_WEBHOOKS_SECRET),
    BARE_GENERIC,
)
"""A source per built-in provider, as its examples configure one, and a generic one that only checks an API key
(no mapping, so every body it accepts is an event)."""
GENERIC_PROVIDER = "generic"
# Signature headers whose format admits a further part the verifier passes over.
SIGNATURE_EXTRA_PARTS: dict[str, tuple[str, bytes]] = {
    "officernd": (OFFICERND_SIGNATURE_HEADER, b",v0=\xff\xfe\xc3\x28"),
    "standard_webhooks": (STANDARD_WEBHOOKS_SIGNATURE_HEADER, b" v1,\xff\xfe\xed\xa0\x80"),
}


# --- what is planned ------------------------------------------------------------------------


class Hostile(enum.StrEnum):
    """The classes of hostile content; a request may carry several."""

    DEEP_NESTING = "deep nesting"
    HUGE_NUMBER = "huge number"
    NUL = "NUL"
    LONE_SURROGATE = "lone surrogate"
    INVALID_UTF8_BODY = "invalid UTF-8 in the body"
    UNKNOWN_TYPE = "unknown event type"
    MISSING_FIELD = "missing field"
    BIG_BODY = "big body"
    FORM = "form body"
    XML = "XML body"
    NOT_A_FORMAT = "bytes of no format"
    CONTENT_TYPE_BYTES = "Content-Type with invalid UTF-8"
    SIGNATURE_EXTRA_PART = "signature header with an invalid UTF-8 part"


@dataclass(frozen=True, slots=True)
class Insert:
    """A member ``key: value`` added to the body's object at ``depth`` (0: the top), both raw JSON."""

    hostile: Hostile
    key: bytes
    value: bytes
    depth: int
    key_hostile: Hostile | None = None


@dataclass(frozen=True, slots=True)
class Replace:
    """The ``choice``-th scalar of the body (by a walk of its objects) replaced by raw JSON ``value``.

    A token unique to the request goes into ``value`` (before a string's closing quote, or as
    more digits of a number), so two requests never share a replaced id.
    """

    hostile: Hostile
    value: bytes
    choice: int


@dataclass(frozen=True, slots=True)
class Delete:
    """The ``choice``-th scalar of the body removed, its key with it."""

    choice: int
    hostile: Hostile = Hostile.MISSING_FIELD


@dataclass(frozen=True, slots=True)
class RenameType:
    """Every value naming the event type replaced by an unknown one (and signed as that type)."""

    name: str
    hostile: Hostile = Hostile.UNKNOWN_TYPE


Mutation = Insert | Replace | Delete | RenameType


class BodyKind(enum.StrEnum):
    EVENT = "event"
    FORM = "form"
    XML = "xml"
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class RequestPlan:
    source: SignedSource
    event_type: str
    kind: BodyKind
    mutations: tuple[Mutation, ...] = ()
    garbage: bytes = b""
    """The body of a ``BYTES`` request; the hostile part of a form's or an XML body's field."""
    nesting: int = 0
    """How deep an XML body nests."""
    body_size: int | None = None
    """Padded to this many bytes (a big body)."""
    content_type_bytes: bytes | None = None
    signature_extra_part: bool = False

    @property
    def classes(self) -> frozenset[Hostile]:
        found = {mutation.hostile for mutation in self.mutations}
        found |= {
            mutation.key_hostile for mutation in self.mutations if isinstance(mutation, Insert) and mutation.key_hostile
        }
        found |= {
            hostile
            for hostile, present in (
                (Hostile.FORM, self.kind is BodyKind.FORM),
                (Hostile.XML, self.kind is BodyKind.XML),
                (Hostile.NOT_A_FORMAT, self.kind is BodyKind.BYTES),
                (Hostile.BIG_BODY, self.body_size is not None),
                (Hostile.CONTENT_TYPE_BYTES, self.content_type_bytes is not None),
                (Hostile.SIGNATURE_EXTRA_PART, self.signature_extra_part),
            )
            if present
        }
        return frozenset(found)

    @property
    def label(self) -> str:
        return f"{self.source.name}: {', '.join(sorted(self.classes)) or 'valid'}"


# --- Hypothesis: the strategies -------------------------------------------------------------

_NESTING = st.integers(min_value=300, max_value=3000)


@st.composite
def nested_json(draw: st.DrawFn) -> bytes:
    depth = draw(_NESTING)
    if draw(st.booleans()):
        return b"[" * depth + b"]" * depth
    return b'{"n":' * depth + b"0" + b"}" * depth


_HUGE_NUMBERS = st.sampled_from(
    [b"123456789012345678901234567890", b"-123456789012345678901234567890", b"1e400", b"-1e400", b"1e-400",
     b"1E+400", b"0." + b"3" * 400, b"9" * 500]
)  # fmt: skip
_NUL_STRINGS = st.sampled_from([b'"\\u0000"', b'"a\\u0000b"', b'"\\u0000\\u0000"', b'"\x00"'])
_SURROGATE_STRINGS = st.sampled_from([b'"\\ud800"', b'"\\udfff"', b'"x\\udbff"', b'"\\ud800\\u0000"', b'"\\udc80a"'])
_INVALID_UTF8_STRINGS = st.sampled_from(
    [b'"\xff\xfe"', b'"\xc3\x28"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"', b'"\x80"']
)
_HOSTILE_KEYS = st.sampled_from([b'"hostile"', b'"\\u0000"', b'"\\ud800"', b'"\xff"', b'""'])
_HOSTILE_VALUES: list[tuple[Hostile, st.SearchStrategy[bytes]]] = [
    (Hostile.DEEP_NESTING, nested_json()),
    (Hostile.HUGE_NUMBER, _HUGE_NUMBERS),
    (Hostile.NUL, _NUL_STRINGS),
    (Hostile.LONE_SURROGATE, _SURROGATE_STRINGS),
    (Hostile.INVALID_UTF8_BODY, _INVALID_UTF8_STRINGS),
]
_REPLACEABLE = [entry for entry in _HOSTILE_VALUES if entry[0] is not Hostile.DEEP_NESTING]
_KEY_CLASSES = {b'"\\u0000"': Hostile.NUL, b'"\\ud800"': Hostile.LONE_SURROGATE, b'"\xff"': Hostile.INVALID_UTF8_BODY}


@st.composite
def insertions(draw: st.DrawFn) -> Insert:
    hostile, values = draw(st.sampled_from(_HOSTILE_VALUES))
    key = draw(_HOSTILE_KEYS)
    return Insert(hostile, key, draw(values), draw(st.integers(0, 3)), key_hostile=_KEY_CLASSES.get(key))


@st.composite
def replacements(draw: st.DrawFn) -> Replace:
    hostile, values = draw(st.sampled_from(_REPLACEABLE))
    return Replace(hostile, draw(values), draw(st.integers(0, 40)))


_UNKNOWN_TYPES = st.sampled_from(["", "member.exploded", "\x00", "a" * 300]) | st.text(max_size=20)
_MUTATIONS = st.one_of(
    insertions(),
    replacements(),
    st.builds(Delete, st.integers(0, 40)),
    st.builds(RenameType, _UNKNOWN_TYPES),
)
_CONTENT_TYPES = st.sampled_from(
    [b"application/json; charset=\xff\xfe", b"\xff/json", b"application/json\xc3\x28", b"text/xml; x=\xed\xa0\x80"]
)
_GARBAGE = st.binary(max_size=300) | st.sampled_from([b"\x00" * 64, b"\xff" * 64, b"{", b"null", b"[]", b'"\\ud800"'])


@st.composite
def request_plans(draw: st.DrawFn) -> RequestPlan:
    source = draw(st.sampled_from(PROPERTY_SOURCES))
    event_type = draw(st.sampled_from(provider(source.provider).examples.event_types))
    kinds = [BodyKind.EVENT, BodyKind.EVENT, BodyKind.EVENT, BodyKind.BYTES]
    if source.provider == GENERIC_PROVIDER:
        kinds += [BodyKind.FORM, BodyKind.XML]
    kind = draw(st.sampled_from(kinds))
    mutations = tuple(draw(st.lists(_MUTATIONS, max_size=3))) if kind is BodyKind.EVENT else ()
    garbage = draw(_GARBAGE) if kind is not BodyKind.EVENT else b""
    return RequestPlan(
        source=source,
        event_type=event_type,
        kind=kind,
        mutations=mutations,
        garbage=garbage,
        nesting=draw(st.sampled_from([0, 0, 400, 2000])) if kind is BodyKind.XML else 0,
        body_size=draw(st.none() | st.integers(MAX_BODY_BYTES // 2, MAX_BODY_BYTES))
        if kind is BodyKind.EVENT
        else None,
        content_type_bytes=draw(st.none() | _CONTENT_TYPES),
        signature_extra_part=source.provider in SIGNATURE_EXTRA_PARTS and draw(st.booleans()),
    )


def plan_requests() -> list[RequestPlan]:
    """``BATCHES`` examples of ``REQUESTS_PER_BATCH`` planned requests each, all drawn before
    anything is sent; a big body beyond the first ``MAX_BIG_BODIES`` is sent unpadded."""
    plans: list[RequestPlan] = []

    @seed(SEED)
    @settings(
        max_examples=BATCHES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(request_plans(), min_size=REQUESTS_PER_BATCH, max_size=REQUESTS_PER_BATCH))
    def collect(batch: list[RequestPlan]) -> None:
        plans.extend(batch)

    collect()
    big = 0
    for index, plan in enumerate(plans):
        if plan.body_size is not None:
            big += 1
            if big > MAX_BIG_BODIES:
                plans[index] = replace(plan, body_size=None)
    return plans


# --- building a request from its plan ---------------------------------------------------------


def _containers(document: Any) -> list[dict[str, Any]]:
    """Every object of ``document``, outermost first."""
    found: list[dict[str, Any]] = []
    pending = [document]
    while pending:
        value = pending.pop(0)
        if isinstance(value, dict):
            found.append(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return found


def _scalar_slots(document: Any) -> list[tuple[dict[str, Any], str]]:
    return [
        (container, key)
        for container in _containers(document)
        for key, value in container.items()
        if not isinstance(value, dict | list)
    ]


def _renamed(value: Any, old: str, new: str) -> Any:
    if value == old:
        return new
    if isinstance(value, dict):
        return {key: _renamed(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, old, new) for item in value]
    return value


def _unique(raw_json: bytes, token: str) -> bytes:
    """``raw_json`` (a number or a string) made unique to one request, its hostile part kept."""
    if raw_json.endswith(b'"'):
        return raw_json[:-1] + f"-{token}".encode() + b'"'
    return raw_json + str(int(token, 16)).encode()


def event_body(plan: RequestPlan, token: str, now: datetime) -> tuple[bytes, str]:
    """The body of an ``EVENT`` request and the event type it is signed as."""
    examples = provider(plan.source.provider).examples
    document: Any = examples.body(plan.event_type, now)
    event_type = plan.event_type
    placeholders: dict[bytes, bytes] = {}

    def placeholder(raw_json: bytes) -> str:
        name = f"\x1fplaceholder-{len(placeholders)}-{token}\x1f"
        placeholders[orjson.dumps(name)] = raw_json
        return name

    for mutation in plan.mutations:
        if isinstance(mutation, RenameType):
            document = _renamed(document, event_type, mutation.name)
            event_type = mutation.name
        elif isinstance(mutation, Delete):
            slots = _scalar_slots(document)
            if slots:
                container, key = slots[mutation.choice % len(slots)]
                del container[key]
        elif isinstance(mutation, Replace):
            slots = _scalar_slots(document)
            if slots:
                container, key = slots[mutation.choice % len(slots)]
                container[key] = placeholder(_unique(mutation.value, token))
        else:
            containers = _containers(document)
            target = containers[min(mutation.depth, len(containers) - 1)]
            target[placeholder(mutation.key)] = placeholder(mutation.value)
    if plan.body_size is not None and isinstance(document, dict):
        document["padding"] = ""
    body = orjson.dumps(document)
    for name, raw_json in placeholders.items():
        body = body.replace(name, raw_json)
    if plan.body_size is not None and b'"padding":""' in body:
        filler = b"x" * max(0, plan.body_size - len(body))
        body = body.replace(b'"padding":""', b'"padding":"' + filler + b'"', 1)
    return body, event_type


def form_body(plan: RequestPlan, token: str, now: datetime) -> bytes:
    """The example event as a form (its flat fields), one field carrying the hostile bytes raw."""
    document = provider(plan.source.provider).examples.body(plan.event_type, now)
    fields = {key: str(value) for key, value in document.items() if not isinstance(value, dict | list)}
    fields["id"] = f"evt_{token}"
    return urlencode(fields).encode() + b"&note=" + plan.garbage + b"&note=%00%ff%ED%A0%80"


def xml_body(plan: RequestPlan, token: str, now: datetime) -> bytes:
    """The example event's flat fields as XML elements, the hostile bytes raw in one more, then
    ``plan.nesting`` levels of elements."""
    document = provider(plan.source.provider).examples.body(plan.event_type, now)
    fields = b"".join(
        f"<{key}>{value}</{key}>".encode() for key, value in document.items() if not isinstance(value, dict | list)
    )
    nested = b"<n>" * plan.nesting + b"</n>" * plan.nesting
    return (
        b'<?xml version="1.0" encoding="UTF-8"?><event id="' + token.encode() + b'">' + fields
        + b"<note>" + plan.garbage + b"</note>" + nested + b"</event>"
    )  # fmt: skip


_KIND_CONTENT_TYPES = {
    BodyKind.FORM: b"application/x-www-form-urlencoded",
    BodyKind.XML: b"application/xml",
    BodyKind.BYTES: b"application/octet-stream",
}


@dataclass
class Request:
    """One request as sent, and what became of it."""

    plan: RequestPlan
    target: str
    headers: list[tuple[str, bytes]]
    body: bytes
    answer: RawAnswer | None = None

    @property
    def ingest_id(self) -> str | None:
        return self.answer.ingest_id if self.answer is not None else None

    @property
    def status(self) -> str:
        return str(self.answer.status) if self.answer is not None else "closed"


def ingest_ids(requests: Sequence[Request]) -> set[str]:
    """The ingest ids of the requests answered 2xx."""
    return {request.ingest_id for request in requests if request.ingest_id is not None}


def build_request(plan: RequestPlan, token: str) -> Request:
    """The request ``plan`` describes, signed with its source's credentials now."""
    now = time.time()
    moment = datetime.fromtimestamp(now, tz=UTC)
    event_type = plan.event_type
    if plan.kind is BodyKind.EVENT:
        body, event_type = event_body(plan, token, moment)
    elif plan.kind is BodyKind.FORM:
        body = form_body(plan, token, moment)
    elif plan.kind is BodyKind.XML:
        body = xml_body(plan, token, moment)
    else:
        body = plan.garbage + token.encode()
    signed = plan.source.signed(body, now=now, event_type=event_type)
    headers = [(name, value.encode("latin-1")) for name, value in signed.headers.items()]
    content_type = plan.content_type_bytes or _KIND_CONTENT_TYPES.get(plan.kind)
    if content_type is not None:
        headers = [(name, value) for name, value in headers if name.lower() != "content-type"]
        headers.append(("Content-Type", content_type))
    if plan.signature_extra_part:
        signature_header, extra_part = SIGNATURE_EXTRA_PARTS[plan.source.provider]
        headers = [
            (name, value + extra_part if name.lower() == signature_header.lower() else value) for name, value in headers
        ]
    target = webhook_url("", plan.source.name) + (f"?{urlencode(signed.query)}" if signed.query else "")
    return Request(plan, target, headers, body)


def valid_request(source: SignedSource, token: str) -> Request:
    return build_request(RequestPlan(source, provider(source.provider).examples.event_types[0], BodyKind.EVENT), token)


async def send_all(pipeline: Pipeline, requests: Sequence[Request]) -> None:
    """Every request, ``CONCURRENT_REQUESTS`` at a time; each answer kept on its request."""
    limit = asyncio.Semaphore(CONCURRENT_REQUESTS)
    address = (LOOPBACK, pipeline.port)

    async def send(request: Request) -> None:
        async with limit:
            request.answer = await asyncio.to_thread(post_bytes, address, request.target, request.headers, request.body)

    await asyncio.gather(*(send(request) for request in requests))


# --- the accounting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one ingest id ended: a row, or a dead letter (and why)."""

    place: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class PropertyTally:
    """Every 2xx must have exactly one outcome; ``lost``, ``duplicates`` and ``without_reason`` must be 0."""

    generated: int
    big_bodies: int
    statuses: dict[str, int]
    answered_2xx: int
    rows: int
    dead_letters: int
    sink_dead_letters: int
    dead_letter_reasons: dict[str, int]
    lost: int
    duplicates: int
    without_reason: int
    server_errors: int
    settle_seconds: float
    """From the last planned request's answer until each had ended (or the timeout)."""
    valid_after_delivered: int
    valid_after_sent: int
    valid_after_seconds: float | None
    crashed: tuple[str, ...]
    seed: int
    lost_by_class: dict[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        problems = [
            f"{count} {what}"
            for count, what in (
                (self.lost, "lost"),
                (self.duplicates, "with more than one row or dead letter"),
                (self.without_reason, "dead letters without a reason"),
                (self.server_errors, "5xx answers"),
                (self.valid_after_sent - self.valid_after_delivered, "valid events sent after them not delivered"),
            )
            if count
        ]
        if self.crashed:
            problems.append(f"crashed: {', '.join(self.crashed)}")
        return problems


async def outcomes(pipeline: Pipeline) -> dict[str, list[Outcome]]:
    """Every row and dead letter of the pipeline, by ingest id."""
    kafka = pipeline.kafka
    rows, dead, sink_dead = await asyncio.gather(
        table_rows(pipeline.dsn),
        read_topic(kafka, kafka.dlq_topic),
        read_topic(kafka, sink_dead_letter_topic(kafka)),
    )
    found: dict[str, list[Outcome]] = {}
    for _, row_ingest_id in rows:
        found.setdefault(row_ingest_id, []).append(Outcome("row"))
    for place, records, id_header in (("dlq", dead, "hookbus-ingest-id"), ("sink dlq", sink_dead, "ce_ingestid")):
        for record in records:
            ingest_id = record.header(id_header) or _structured_ingest_id(record) or ""
            found.setdefault(ingest_id, []).append(Outcome(place, _reason(record)))
    return found


def _reason(record: KafkaRecord) -> str | None:
    stage, reason = record.header(STAGE_HEADER), record.header(REASON_HEADER)
    return f"{stage}/{reason}" if stage and reason else None


def _structured_ingest_id(record: KafkaRecord) -> str | None:
    try:
        document = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None
    return document.get("ingestid") if isinstance(document, dict) else None


async def settle(pipeline: Pipeline, ingest_ids: set[str], *, timeout: float) -> dict[str, list[Outcome]]:
    """Poll, bounded, until every ingest id has an outcome and nothing changed for a while."""
    deadline = time.monotonic() + timeout
    found = await outcomes(pipeline)
    while time.monotonic() < deadline and not ingest_ids <= found.keys():
        await asyncio.sleep(POLL_SECONDS)
        found = await outcomes(pipeline)
    # A second row or dead letter, were one coming, would come within the sink's batch time.
    await asyncio.sleep(2 * POLL_SECONDS)
    return await outcomes(pipeline)


@dataclass(frozen=True, slots=True)
class ValidAfter:
    """The valid events sent once the hostile ones had ended."""

    requests: list[Request]
    delivered: int
    seconds: float | None
    """How long until the last was a row; ``None`` when one was not within ``VALID_DELIVERY_SECONDS``."""


async def deliver_valid_events(pipeline: Pipeline) -> ValidAfter:
    """One valid event per source, sent now, and how many became rows within ``VALID_DELIVERY_SECONDS``."""
    started = time.monotonic()
    requests = [valid_request(source, f"{number:04x}") for number, source in enumerate(PROPERTY_SOURCES)]
    await send_all(pipeline, requests)
    wanted = ingest_ids(requests)
    delivered: set[str] = set()
    while time.monotonic() - started < VALID_DELIVERY_SECONDS and delivered != wanted:
        delivered = wanted & {ingest_id for _, ingest_id in await table_rows(pipeline.dsn)}
        if delivered != wanted:
            await asyncio.sleep(0.2)
    took = time.monotonic() - started if delivered == wanted and len(wanted) == len(requests) else None
    return ValidAfter(requests, len(delivered), took)


def tally(
    requests: Sequence[Request],
    found: dict[str, list[Outcome]],
    valid: ValidAfter,
    *,
    settle_seconds: float,
    crashed: list[str],
) -> PropertyTally:
    """The planned ``requests`` and the valid ones after them, each 2xx judged by ``found``: every
    number but ``generated`` and ``big_bodies`` counts both."""
    statuses = Counter(request.status for request in [*requests, *valid.requests])
    accepted = [request for request in [*requests, *valid.requests] if request.ingest_id is not None]
    lost = [request for request in accepted if not found.get(request.ingest_id or "")]
    twice = [request for request in accepted if len(found.get(request.ingest_id or "", [])) > 1]
    ended = [
        found[request.ingest_id or ""][0] for request in accepted if len(found.get(request.ingest_id or "", [])) == 1
    ]
    dead = [outcome for outcome in ended if outcome.place != "row"]
    lost_by_class = Counter(str(class_name) for request in lost for class_name in request.plan.classes or {"valid"})
    return PropertyTally(
        generated=len(requests),
        big_bodies=sum(request.plan.body_size is not None for request in requests),
        statuses=dict(sorted(statuses.items())),
        answered_2xx=len(accepted),
        rows=sum(outcome.place == "row" for outcome in ended),
        dead_letters=len(dead),
        sink_dead_letters=sum(outcome.place == "sink dlq" for outcome in dead),
        dead_letter_reasons=dict(Counter(outcome.reason or "none" for outcome in dead).most_common()),
        lost=len(lost),
        duplicates=len(twice),
        without_reason=sum(outcome.reason is None for outcome in dead),
        server_errors=sum(count for status, count in statuses.items() if status.startswith("5")),
        settle_seconds=round(settle_seconds, 1),
        valid_after_delivered=valid.delivered,
        valid_after_sent=len(valid.requests),
        valid_after_seconds=round(valid.seconds, 2) if valid.seconds is not None else None,
        crashed=tuple(crashed),
        seed=SEED,
        lost_by_class=dict(lost_by_class.most_common()),
        examples=tuple(
            f"{what} {request.plan.label} ({request.ingest_id}): {found.get(request.ingest_id or '', [])}"
            for what, group in (("lost", lost), ("twice", twice))
            for request in group[:5]
        ),
    )


# --- the test ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Live:
    pipeline: Pipeline
    running: Running


@pytest.fixture
async def live(kafka_bootstrap: str, pg_database: str, tmp_path: Path) -> AsyncIterator[Live]:
    kafka = fresh_topics(kafka_bootstrap)
    port = free_port()
    sources = [
        source.section(max_body_bytes=MAX_BODY_BYTES)
        if source is BARE_GENERIC
        else source.example_section(max_body_bytes=MAX_BODY_BYTES)
        for source in PROPERTY_SOURCES
    ]
    document = pipeline_document(kafka, port=port, dsn=pg_database, workdir=tmp_path, sources=sources)
    pipeline = Pipeline.write(tmp_path, kafka, port=port, dsn=pg_database, document=document)
    try:
        yield Live(pipeline, await pipeline.start())
    finally:
        await asyncio.to_thread(pipeline.stop)


def test_every_built_in_provider_has_a_source() -> None:
    assert {item.name for item in BUILT_IN} == {source.provider for source in PROPERTY_SOURCES}


async def test_every_authentic_2xx_is_exactly_one_row_or_one_dead_letter(live: Live, findings: list[Finding]) -> None:
    pipeline = live.pipeline
    started = time.monotonic()
    plans = plan_requests()
    requests = [build_request(plan, f"{number:08x}") for number, plan in enumerate(plans)]
    await send_all(pipeline, requests)
    sent = time.monotonic()
    await settle(pipeline, ingest_ids(requests), timeout=SETTLE_TIMEOUT_SECONDS)
    settle_seconds = time.monotonic() - sent
    valid = await deliver_valid_events(pipeline)
    found = await settle(pipeline, ingest_ids(valid.requests), timeout=POLL_SECONDS)
    result = tally(requests, found, valid, settle_seconds=settle_seconds, crashed=pipeline.crashed())
    problems = result.problems()
    name = f"{result.generated} authentic hostile requests, every built-in provider (seed {SEED})"
    findings.append(
        Finding(
            PROPERTIES, name, {**_numbers(result), "seconds": round(time.monotonic() - started, 1)}, tuple(problems)
        )
    )
    print(f"\npipeline property (seed {SEED}, {SEED_ENV} replays it): {orjson.dumps(_numbers(result)).decode()}")
    assert not problems, f"{problems} (seed {SEED}): {result}\n{_log_excerpts(live)}"


def _numbers(result: PropertyTally) -> dict[str, Any]:
    return asdict(result)


def _log_excerpts(live: Live) -> str:
    """What each service logged of errors (all of it, for one that exited)."""
    excerpts = []
    for process in live.running.all():
        text = process.log_text()
        if not process.running:
            excerpts.append(f"--- {process.name} exited {process.exit_code}:\n{text[-LOG_EXCERPT_CHARS:]}")
            continue
        errors = [line for line in text.splitlines() if '"error"' in line or "Traceback" in line][-10:]
        if errors:
            excerpts.append(f"--- {process.name}:\n" + "\n".join(line[:500] for line in errors))
    return "\n".join(excerpts)
