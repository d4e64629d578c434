"""A generic source's example: what a CRM posts to an Octolis-style inbound webhook, with
an API key, a required header and an optional HMAC (``sha256=`` + hex HMAC-SHA256(secret,
``X-Timestamp`` + "." + body), the timestamp in Unix seconds)."""

from __future__ import annotations

import secrets
from datetime import datetime

from hookbus.example_data import hmac_hex, iso_seconds, require_api_key, small_number
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

API_KEY_PARAMETER = "api-key"
REQUIRED_HEADERS = {"X-Source-System": "crm"}
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_PREFIX = "sha256="


def body(event_type: str, now: datetime) -> JsonObject:
    customer = f"c_{small_number(1000, 99999)}"
    return {
        "id": f"evt_{secrets.token_hex(8)}",
        "type": event_type,
        "customer_id": customer,
        "email": f"{customer}@example.com",
        "updated_at": iso_seconds(now),
    }


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """The API key always; the HMAC when a secret is given (the source may require one)."""
    headers = {"Content-Type": "application/json", **REQUIRED_HEADERS}
    if credentials.secret is not None:
        seconds = str(int(now))
        headers[TIMESTAMP_HEADER] = seconds
        headers[SIGNATURE_HEADER] = SIGNATURE_PREFIX + hmac_hex(credentials.secret, seconds.encode("ascii"), b".", body)
    return SignedRequest(headers, {API_KEY_PARAMETER: require_api_key("generic", credentials)})


EXAMPLES = Examples(
    event_types=("customer.updated", "customer.created", "customer.deleted"),
    body=body,
    sign=sign,
    source={
        "api_key": "${API_KEY}",
        "required_headers": REQUIRED_HEADERS,
        "secrets": ["${SECRET}"],
        "signature": {"header": SIGNATURE_HEADER, "prefix": SIGNATURE_PREFIX, "timestamp_header": TIMESTAMP_HEADER},
        "mapping": {
            "type": "/type",
            "id": "/id",
            "subject": "/customer_id",
            "time": "/updated_at",
            "partition_key": "/customer_id",
        },
    },
)
