"""October's example events and signing, from its documentation (one event per type)."""

from __future__ import annotations

from datetime import datetime

from hookbus.example_data import hmac_hex, object_id, require_secret
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

HASH_HEADER = "X-O5R-HASH"
TIMESTAMP_HEADER = "X-O5R-TIMESTAMP"


def body(event_type: str, now: datetime) -> JsonObject:
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


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """``X-O5R-HASH``: hex HMAC-SHA256(key, ``X-O5R-TIMESTAMP`` in milliseconds + body)."""
    secret = require_secret("october", credentials)
    millis = str(int(now * 1000))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: millis}
    headers[HASH_HEADER] = hmac_hex(secret, millis.encode("ascii"), body)
    return SignedRequest(headers)


EXAMPLES = Examples(
    event_types=("update_request", "new_report", "new_offer", "update_offer"),
    body=body,
    sign=sign,
    source={"secrets": ["${SECRET}"]},
)
