"""OfficeRnD's example events and signing: every documented event type, each resource as
the documentation shows it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hookbus.example_data import hmac_hex, iso_millis, object_id, require_secret, small_number
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

SIGNATURE_HEADER = "officernd-signature"


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
_RESOURCES: dict[str, tuple[_Resource, tuple[str, ...]]] = {
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
EVENT_TYPES = tuple(
    f"{resource}.{operation}" for resource, (_, operations) in _RESOURCES.items() for operation in operations
)


def body(event_type: str, now: datetime) -> JsonObject:
    resource_name, operation = event_type.rsplit(".", 1)
    resource, _ = _RESOURCES[resource_name]
    data: JsonObject = {"object": resource.build(now)}
    if operation == "updated":
        data["previousAttributes"] = {resource.changed: resource.previous}
    if "." in resource_name:
        data[resource_name.split(".", 1)[0]] = object_id()
    return {"event": object_id(), "eventType": event_type, "data": data, "createdAt": iso_millis(now)}


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """``officernd-signature: t=<seconds>,signature=<hex HMAC-SHA256(secret, body + "." + t)>``."""
    secret = require_secret("officernd", credentials)
    seconds = str(int(now))
    signature = hmac_hex(secret, body, b".", seconds.encode("ascii"))
    return SignedRequest({"Content-Type": "application/json", SIGNATURE_HEADER: f"t={seconds},signature={signature}"})


EXAMPLES = Examples(
    event_types=("member.updated", *(name for name in EVENT_TYPES if name != "member.updated")),
    body=body,
    sign=sign,
    source={"secrets": ["${SECRET}"]},
)
