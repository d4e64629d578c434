"""``hookbus send``: post a realistic example event to a gateway, signed as its provider signs.

The request is what the provider itself would send: its headers, a signature over the exact
bytes of the body, a fresh timestamp, and fresh ids in the body so that every send is a
distinct event. The credentials default to the ones ``hookbus dev`` generated into its
state directory, so on a development machine ``hookbus send october`` is all it takes.

The signing here is written from the providers' documentation, independently of the
gateway's verifiers, so a successful send is also a check of the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from hookbus.devstack import DEFAULT_STATE_DIR, DevState
from hookbus.errors import ConfigError
from hookbus.providers import PROVIDERS

DEFAULT_URL = "http://127.0.0.1:8080"
WEBHOOK_PATH = "/webhooks/"
REQUEST_TIMEOUT_SECONDS = 30.0

JsonObject = dict[str, Any]


# --- ids and times as the providers write them -------------------------------------------


def object_id() -> str:
    """A MongoDB ObjectId-like id (24 hex digits), as October and OfficeRnD use."""
    return secrets.token_hex(12)


def short_id(length: int = 16) -> str:
    """A short alphanumeric id, as Offerte Adviseur gives its events."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def small_number(low: int, high: int) -> int:
    return low + secrets.randbelow(high - low)


def iso_millis(moment: datetime) -> str:
    """``2020-10-19T10:38:15.127Z``: JavaScript's ``Date.toISOString()``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


# --- October: {event, requestId?, offerId?, diff?} ----------------------------------------


def october_event(event_type: str, now: datetime) -> JsonObject:
    request_id = object_id()
    if event_type == "new_report":
        return {"event": event_type, "requestId": request_id}
    if event_type == "update_request":
        return {"event": event_type, "requestId": request_id, "diff": {"property": "status", "after": "accepted"}}
    if event_type == "new_offer":
        return {"event": event_type, "offerId": object_id(), "requestId": request_id}
    return {
        "event": event_type,
        "offerId": object_id(),
        "requestId": request_id,
        "diff": {"property": "stage", "after": "signed"},
    }


OCTOBER_TYPES = ("update_request", "new_report", "new_offer", "update_offer")


# --- OfficeRnD: {event, eventType, data: {object, previousAttributes?, <parent>?}, createdAt}


@dataclass(frozen=True, slots=True)
class _Resource:
    """How one OfficeRnD resource looks: its object, and one attribute an update changes."""

    build: Callable[[datetime], JsonObject]
    changed: str
    previous: Any


def _member(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "status": "active",
        "calculatedStatus": "active",
        "team": object_id(),
        "office": object_id(),
        "name": "Jonathan Brown",
        "description": "",
        "image": None,
        "organization": object_id(),
        "email": "jonathan.brown@example.com",
        "createdAt": iso_millis(now - timedelta(days=120)),
    }


def _company(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "name": "E Corp.",
        "email": "billing@ecorp.example.com",
        "status": "active",
        "office": object_id(),
        "organization": object_id(),
        "description": "Team of 12 on the second floor",
        "createdAt": iso_millis(now - timedelta(days=400)),
    }


def _payment_details(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "card": {
            "id": f"card_{secrets.token_hex(12)}",
            "name": "E Corp.",
            "brand": "Visa",
            "funding": "credit",
            "exp_month": 11,
            "exp_year": now.year + 2,
            "country": "US",
            "cvc_check": "pass",
            "last4": "1111",
        },
        "provider": "stripe",
        "providerId": f"cus_{secrets.token_hex(7)}",
        "sourceId": f"card_{secrets.token_hex(12)}",
        "authorization": {"authProviderId": f"seti_{secrets.token_hex(12)}", "status": "not_required"},
        "createdAt": iso_millis(now),
        "createdBy": object_id(),
    }


def _invoice(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "documentType": "invoice",
        "number": f"INV-{small_number(1000, 99999):05d}",
        "status": "awaiting_payment",
        "date": iso_millis(now),
        "dueDate": iso_millis(now + timedelta(days=14)),
        "currency": "EUR",
        "total": 605.0,
        "totalTax": 105.0,
        "company": object_id(),
        "office": object_id(),
        "organization": object_id(),
        "createdAt": iso_millis(now),
    }


def _charge(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "amount": 605.0,
        "currency": "EUR",
        "status": "paid",
        "date": iso_millis(now),
        "reference": f"ch_{secrets.token_hex(12)}",
        "createdAt": iso_millis(now),
    }


def _allocation(now: datetime) -> JsonObject:
    return {"_id": object_id(), "amount": 50.0, "creditNote": object_id(), "date": iso_millis(now)}


def _fee(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "name": "Meeting room overtime",
        "price": 35.0,
        "quantity": 2,
        "date": iso_millis(now),
        "member": object_id(),
        "office": object_id(),
        "refundable": False,
        "createdAt": iso_millis(now),
    }


def _membership(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "name": "Hot desk monthly",
        "price": 250.0,
        "status": "active",
        "startDate": iso_millis(now),
        "endDate": None,
        "member": object_id(),
        "plan": object_id(),
        "office": object_id(),
        "createdAt": iso_millis(now),
    }


def _booking(now: datetime) -> JsonObject:
    start = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    return {
        "_id": object_id(),
        "resourceId": object_id(),
        "start": {"dateTime": iso_millis(start)},
        "end": {"dateTime": iso_millis(start + timedelta(hours=2))},
        "summary": "Sprint planning",
        "member": object_id(),
        "office": object_id(),
        "canceled": False,
        "createdAt": iso_millis(now),
    }


def _contract(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "name": "Private office 2.14",
        "status": "approved",
        "startDate": iso_millis(now),
        "endDate": iso_millis(now + timedelta(days=365)),
        "company": object_id(),
        "office": object_id(),
        "deposit": 1500.0,
        "createdAt": iso_millis(now),
    }


def _ticket(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "title": "Printer on floor 2 is jammed",
        "description": "Paper stuck in tray 2 since this morning.",
        "status": "open",
        "member": object_id(),
        "office": object_id(),
        "createdAt": iso_millis(now),
    }


def _integration(now: datetime) -> JsonObject:
    return {"_id": object_id(), "name": "Slack", "type": "slack", "createdAt": iso_millis(now - timedelta(days=30))}


def _pass(now: datetime) -> JsonObject:
    return {
        "_id": object_id(),
        "plan": object_id(),
        "member": object_id(),
        "count": 10,
        "used": 0,
        "startDate": iso_millis(now),
        "endDate": iso_millis(now + timedelta(days=90)),
        "price": 180.0,
        "createdAt": iso_millis(now),
    }


def _occupancy_slot(now: datetime) -> JsonObject:
    start = (now + timedelta(days=2)).replace(hour=14, minute=0, second=0, microsecond=0)
    return {
        "_id": object_id(),
        "booking": object_id(),
        "resourceId": object_id(),
        "start": iso_millis(start),
        "end": iso_millis(start + timedelta(hours=1)),
        "member": object_id(),
        "office": object_id(),
    }


# The resources and operations of OfficeRnD's "System event types" table.
_OFFICERND_RESOURCES: dict[str, tuple[_Resource, tuple[str, ...]]] = {
    "company": (_Resource(_company, "status", "lead"), ("created", "updated", "removed")),
    "company.paymentdetails": (_Resource(_payment_details, "provider", None), ("created", "removed")),
    "member": (_Resource(_member, "calculatedStatus", "drop-in"), ("created", "updated", "removed")),
    "member.paymentdetails": (_Resource(_payment_details, "provider", None), ("created", "removed")),
    "invoice": (_Resource(_invoice, "status", "draft"), ("created", "updated", "removed")),
    "invoice.charge": (_Resource(_charge, "status", "pending"), ("created", "updated", "removed")),
    "invoice.allocation": (_Resource(_allocation, "amount", None), ("created", "removed")),
    "fee": (_Resource(_fee, "quantity", 1), ("created", "updated", "removed")),
    "membership": (_Resource(_membership, "price", 220.0), ("created", "updated", "removed")),
    "booking": (_Resource(_booking, "summary", "Planning"), ("created", "updated", "removed")),
    "contract": (_Resource(_contract, "status", "pending"), ("created", "updated", "removed")),
    "ticket": (_Resource(_ticket, "status", "new"), ("created", "updated", "removed")),
    "integration": (_Resource(_integration, "name", None), ("removed",)),
    "pass": (_Resource(_pass, "count", 5), ("created", "updated")),
    "occupancyslot": (_Resource(_occupancy_slot, "start", None), ("created", "removed")),
}
OFFICERND_TYPES = tuple(
    f"{resource}.{operation}" for resource, (_, operations) in _OFFICERND_RESOURCES.items() for operation in operations
)


def officernd_event(event_type: str, now: datetime) -> JsonObject:
    resource_name, operation = event_type.rsplit(".", 1)
    resource, _ = _OFFICERND_RESOURCES[resource_name]
    data: JsonObject = {"object": resource.build(now)}
    if operation == "updated":
        data["previousAttributes"] = {resource.changed: resource.previous}
    if "." in resource_name:
        data[resource_name.split(".", 1)[0]] = object_id()
    return {"event": object_id(), "eventType": event_type, "data": data, "createdAt": iso_millis(now)}


# --- Offerte Adviseur: {id, type, payload} ------------------------------------------------


def offerte_adviseur_event(event_type: str, now: datetime) -> JsonObject:
    lead_id = small_number(10_000, 999_999)
    invoice_id = small_number(100, 99_999)
    payloads: dict[str, JsonObject] = {
        "lead.created": {
            "lead_id": lead_id,
            "website_code": secrets.token_hex(15),
            "subcategory_id": "1",
            "created_at": iso_seconds(now),
        },
        "lead.sold": {"lead_id": lead_id, "price": "24.50", "currency": "EUR", "sold_at": iso_seconds(now)},
        "lead.invoiced": {"lead_id": lead_id, "invoice_id": invoice_id, "invoiced_at": iso_seconds(now)},
        "lead.paid": {"lead_id": lead_id, "invoice_id": invoice_id, "paid_at": iso_seconds(now)},
        "invoice.created": {
            "invoice_id": invoice_id,
            "lead_id": lead_id,
            "amount": "49.95",
            "currency": "EUR",
            "due_date": iso_date(now + timedelta(days=14)),
            "created_at": iso_seconds(now),
        },
        "invoice.paid": {
            "invoice_id": invoice_id,
            "lead_id": lead_id,
            "amount": "49.95",
            "currency": "EUR",
            "paid_at": iso_seconds(now),
        },
    }
    return {"id": short_id(), "type": event_type, "payload": payloads[event_type]}


OFFERTE_ADVISEUR_TYPES = ("lead.created", "lead.sold", "lead.invoiced", "lead.paid", "invoice.created", "invoice.paid")


# --- Octamile: {product, consumerId, trnsctnId, status, statusNote, crtfct?, crtfctType?} --


def certificate_pdf(transaction_id: str, now: datetime) -> bytes:
    """A small, valid one-page PDF: the insurance certificate an approval carries."""
    text = f"Certificate of insurance - transaction {transaction_id} - issued {iso_date(now)}"
    content = f"BT /F1 11 Tf 56 780 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    document = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(document))
        document += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(document)


def octamile_event(event_type: str, now: datetime) -> JsonObject:
    transaction_id = secrets.token_hex(16)
    body: JsonObject = {"product": "vhcl-tprt-1111", "consumerId": secrets.token_hex(16), "trnsctnId": transaction_id}
    if event_type == "approved":
        certificate = base64.b64encode(certificate_pdf(transaction_id, now)).decode("ascii")
        body.update(status="a", statusNote="", crtfct=certificate, crtfctType="pdf")
    else:
        body.update(status="d", statusNote="Chassis number does not match registration")
    return body


OCTAMILE_TYPES = ("approved", "declined")


# --- generic: what a CRM posts to an Octolis-style inbound webhook ------------------------


def generic_event(event_type: str, now: datetime) -> JsonObject:
    customer = f"c_{small_number(1000, 99999)}"
    return {
        "id": f"evt_{secrets.token_hex(8)}",
        "type": event_type,
        "customer_id": customer,
        "email": f"{customer}@example.com",
        "updated_at": iso_seconds(now),
    }


GENERIC_TYPES = ("customer.updated", "customer.created", "customer.deleted")
GENERIC_REQUIRED_HEADERS: Mapping[str, str] = {"X-Source-System": "crm"}
"""The header the example generic source requires (hookbus/examples/dev.yaml)."""


@dataclass(frozen=True, slots=True)
class ProviderExamples:
    """One provider's example events: every type it documents, and the one sent by default."""

    build: Callable[[str, datetime], JsonObject]
    types: tuple[str, ...]
    default_type: str


EXAMPLES: Mapping[str, ProviderExamples] = {
    "october": ProviderExamples(october_event, OCTOBER_TYPES, "update_request"),
    "officernd": ProviderExamples(officernd_event, OFFICERND_TYPES, "member.updated"),
    "offerte_adviseur": ProviderExamples(offerte_adviseur_event, OFFERTE_ADVISEUR_TYPES, "lead.created"),
    "octamile": ProviderExamples(octamile_event, OCTAMILE_TYPES, "approved"),
    "generic": ProviderExamples(generic_event, GENERIC_TYPES, "customer.updated"),
}


def example_body(provider: str, event_type: str | None = None, *, now: float | None = None) -> bytes:
    """A fresh example event of ``provider`` as the exact bytes the provider would post."""
    examples = EXAMPLES[provider]
    chosen = event_type or examples.default_type
    if chosen not in examples.types:
        raise ValueError(f"{provider} has no event type {chosen!r}; known: {', '.join(examples.types)}")
    moment = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    return orjson.dumps(examples.build(chosen, moment))


# --- signing ------------------------------------------------------------------------------

OCTOBER_HASH_HEADER = "X-O5R-HASH"
OCTOBER_TIMESTAMP_HEADER = "X-O5R-TIMESTAMP"
OFFICERND_SIGNATURE_HEADER = "officernd-signature"
OFFERTE_ADVISEUR_SIGNATURE_HEADER = "x-offerte-adviseur-signature"
API_KEY_PARAMETER = "api-key"
GENERIC_SIGNATURE_HEADER = "X-Signature"
GENERIC_TIMESTAMP_HEADER = "X-Timestamp"
GENERIC_SIGNATURE_PREFIX = "sha256="
"""The optional HMAC of the example generic source: ``sha256=`` + hex HMAC-SHA256(secret,
timestamp + "." + body), the timestamp in Unix seconds in ``X-Timestamp``."""


@dataclass(frozen=True, slots=True)
class Credentials:
    secret: bytes | None = None
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Headers and query parameters that go with one body."""

    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


def hmac_hex(secret: bytes, *parts: bytes) -> str:
    return hmac.new(secret, b"".join(parts), hashlib.sha256).hexdigest()


def check_credentials(provider: str, credentials: Credentials) -> None:
    """Raise :class:`~hookbus.errors.ConfigError` when ``credentials`` lack what ``provider`` needs:
    a secret for those that sign, the API key for Octamile (a generic source uses what it is given)."""
    if PROVIDERS[provider].signs and credentials.secret is None:
        raise ConfigError(f"{provider} signs its requests: give --secret (or run `hookbus dev` first)")
    if provider == "octamile" and credentials.api_key is None:
        raise ConfigError(f"{provider} authenticates with an API key: give --api-key (or run `hookbus dev` first)")


def sign(provider: str, body: bytes, credentials: Credentials, *, now: float | None = None) -> SignedRequest:
    """The headers and query a provider sends with ``body``, signed at ``now`` (default: now)."""
    check_credentials(provider, credentials)
    moment = time.time() if now is None else now
    seconds = str(int(moment)).encode("ascii")
    headers = {"Content-Type": "application/json"}
    query = {API_KEY_PARAMETER: credentials.api_key} if credentials.api_key is not None else {}
    secret = credentials.secret or b""
    if provider == "october":
        millis = str(int(moment * 1000))
        signature = hmac_hex(secret, millis.encode("ascii"), body)
        headers.update({OCTOBER_HASH_HEADER: signature, OCTOBER_TIMESTAMP_HEADER: millis})
    elif provider == "officernd":
        signature = hmac_hex(secret, body, b".", seconds)
        headers[OFFICERND_SIGNATURE_HEADER] = f"t={seconds.decode()},signature={signature}"
    elif provider == "offerte_adviseur":
        headers[OFFERTE_ADVISEUR_SIGNATURE_HEADER] = hmac_hex(secret, body)
    elif provider == "generic":
        headers.update(GENERIC_REQUIRED_HEADERS)
        if credentials.secret is not None:
            headers[GENERIC_TIMESTAMP_HEADER] = seconds.decode()
            headers[GENERIC_SIGNATURE_HEADER] = GENERIC_SIGNATURE_PREFIX + hmac_hex(secret, seconds, b".", body)
    return SignedRequest(headers, query)


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What the gateway answered one request."""

    status: int
    ingest_id: str | None
    detail: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


def webhook_url(base_url: str, source: str) -> str:
    return base_url.rstrip("/") + WEBHOOK_PATH + quote(source, safe="")


def _answer(status: int, text: str) -> Answer:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        ingest_id = document.get("id")
        detail = " ".join(str(document[key]) for key in ("error", "detail") if document.get(key))
        return Answer(status, ingest_id if isinstance(ingest_id, str) else None, detail)
    return Answer(status, None, text.strip()[:200])


async def send_events(
    *,
    url: str,
    source: str,
    provider: str,
    event_type: str | None,
    credentials: Credentials,
    count: int = 1,
    report: Callable[[str, Answer], None] | None = None,
) -> list[Answer]:
    """Send ``count`` fresh example events, one after the other; the gateway's answers in order."""
    answers = []
    chosen = event_type or EXAMPLES[provider].default_type
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(count):
            body = example_body(provider, chosen)
            signed = sign(provider, body, credentials)
            async with session.post(
                webhook_url(url, source), data=body, headers=signed.headers, params=signed.query
            ) as response:
                answer = _answer(response.status, await response.text())
            answers.append(answer)
            if report is not None:
                report(chosen, answer)
    return answers


# --- the command --------------------------------------------------------------------------


def _print_answer(event_type: str, answer: Answer) -> None:
    words = [event_type, str(answer.status)]
    if answer.ingest_id:
        words.append(f"id={answer.ingest_id}")
    if answer.detail:
        words.append(answer.detail)
    print(" ".join(words), flush=True)


def stored_credentials(state: DevState, source: str) -> Credentials:
    """The credentials ``hookbus dev`` generated for ``source`` (none when it has not)."""
    secret = state.secret(source)
    return Credentials(secret=secret.encode("utf-8") if secret is not None else None, api_key=state.api_key(source))


def _credentials(args: argparse.Namespace) -> Credentials:
    stored = stored_credentials(DevState.read(Path(args.state_dir)), args.source or args.provider)
    secret = args.secret.encode("utf-8") if args.secret is not None else stored.secret
    api_key = args.api_key if args.api_key is not None else stored.api_key
    return Credentials(secret=secret, api_key=api_key)


class SendCommand:
    name = "send"
    help = "Post a realistic example event of a provider to a running gateway, signed as the provider signs."

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("provider", choices=sorted(PROVIDERS), help="the provider whose event to send")
        parser.add_argument(
            "event_type",
            nargs="?",
            help="the event type (default: one per provider); "
            + "; ".join(f"{name}: {', '.join(examples.types)}" for name, examples in EXAMPLES.items()),
        )
        parser.add_argument("--url", default=DEFAULT_URL, help=f"the gateway (default: {DEFAULT_URL})")
        parser.add_argument("--source", help="the source name in the URL (default: the provider's name)")
        parser.add_argument("--secret", help="the signing secret (default: from the hookbus dev state)")
        parser.add_argument("--api-key", help="the API key (default: from the hookbus dev state)")
        parser.add_argument("--count", type=int, default=1, help="how many distinct events to send (default: 1)")
        parser.add_argument(
            "--state-dir",
            default=str(DEFAULT_STATE_DIR),
            help=f"where hookbus dev keeps its secrets (default: {DEFAULT_STATE_DIR})",
        )

    def run(self, args: argparse.Namespace) -> int:
        examples = EXAMPLES[args.provider]
        if args.event_type is not None and args.event_type not in examples.types:
            print(
                f"hookbus send: {args.provider} has no event type {args.event_type!r}; "
                f"known: {', '.join(examples.types)}",
                file=sys.stderr,
            )
            return 2
        if args.count < 1:
            print("hookbus send: --count must be at least 1", file=sys.stderr)
            return 2
        credentials = _credentials(args)
        try:
            check_credentials(args.provider, credentials)
        except ConfigError as exc:
            print(f"hookbus send: {exc.detail}", file=sys.stderr)
            return 2
        try:
            answers = asyncio.run(
                send_events(
                    url=args.url,
                    source=args.source or args.provider,
                    provider=args.provider,
                    event_type=args.event_type,
                    credentials=credentials,
                    count=args.count,
                    report=_print_answer,
                )
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            print(f"hookbus send: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1
        return 0 if all(answer.accepted for answer in answers) else 1


SEND = SendCommand()
