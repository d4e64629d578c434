"""Offerte Adviseur's example events and signing, from its documentation."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from hookbus.example_data import hmac_hex, iso_date, iso_seconds, require_secret, short_id, small_number
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

SIGNATURE_HEADER = "x-offerte-adviseur-signature"


def body(event_type: str, now: datetime) -> JsonObject:
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


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """``x-offerte-adviseur-signature``: hex HMAC-SHA256(secret, body); no timestamp."""
    secret = require_secret("offerte_adviseur", credentials)
    return SignedRequest({"Content-Type": "application/json", SIGNATURE_HEADER: hmac_hex(secret, body)})


EXAMPLES = Examples(
    event_types=("lead.created", "lead.sold", "lead.invoiced", "lead.paid", "invoice.created", "invoice.paid"),
    body=body,
    sign=sign,
    source={"secrets": ["${SECRET}"]},
)
