"""Standard Webhooks example events and signing, from the specification (standardwebhooks.com,
v1): the payloads follow its recommended ``{type, timestamp, data}`` shape, with the event
types its own examples use, and are signed as it specifies, independently of the verifier.

The example source's secret is ``whsec_`` followed by the credential ``hookbus dev``
generates: 64 hex digits, which are also base64 (hex digits are base64 characters, and 64
is a whole number of base64 quanta), so the generated value makes a valid Standard Webhooks
secret as it is. The signer takes a secret with or without its ``whsec_`` prefix, as the
reference libraries do, so both the printed secret and the stored credential sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from hookbus.errors import ConfigError
from hookbus.example_data import require_secret, short_id, small_number
from hookbus.mapping import JsonObject, digest_id
from hookbus.provider import Credentials, Examples, SignedRequest

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def _invoice() -> JsonObject:
    return {
        "id": f"inv_{short_id(24)}",
        "type": "invoice",
        "number": f"INV-{small_number(1000, 99999):05d}",
        "amount_paid": 12900,
        "currency": "eur",
        "customer": f"cus_{short_id(14)}",
    }


def _user() -> JsonObject:
    return {"id": str(uuid.uuid4()), "type": "user", "email": "ada.lovelace@example.com", "name": "Ada Lovelace"}


def _contact() -> JsonObject:
    # The specification's own "full payload" example.
    return {
        "id": str(uuid.uuid4()),
        "type": "contact",
        "fullName": "John Smith",
        "address": "800 W NASA Pkwy, Webster, TX 77598, USA",
        "phoneNumber": "(281) 332-2575",
        "birthday": "1980-04-19",
        "occupation": "Engineer, ACME",
    }


_DATA: dict[str, Callable[[], JsonObject]] = {
    "invoice.paid": _invoice,
    "user.created": _user,
    "contact.created": _contact,
}


def body(event_type: str, now: datetime) -> JsonObject:
    timestamp = now.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"type": event_type, "timestamp": timestamp, "data": _DATA[event_type]()}


def _signing_key(credentials: Credentials) -> bytes:
    """The key, decoded as the reference libraries' signer decodes it: the prefix optional,
    padding added, characters outside base64 skipped. A sender signs with whatever it is
    given; refusing a wrong secret is the verifier's part (at startup, and per request)."""
    secret = require_secret("standard_webhooks", credentials).decode("utf-8", "replace")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    except ValueError as exc:
        raise ConfigError(f"a Standard Webhooks secret is {SECRET_PREFIX} followed by base64") from exc


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.

    The message id is derived from the body: the same bytes signed again later are a retry
    of the same message, which keeps its id and gets a new timestamp.
    """
    message_id = f"msg_{digest_id(body)}"
    seconds = str(int(now))
    signed = f"{message_id}.{seconds}.".encode("ascii") + body
    digest = hmac.new(_signing_key(credentials), signed, hashlib.sha256).digest()
    return SignedRequest(
        {
            "Content-Type": "application/json",
            ID_HEADER: message_id,
            TIMESTAMP_HEADER: seconds,
            SIGNATURE_HEADER: "v1," + base64.b64encode(digest).decode("ascii"),
        }
    )


EXAMPLES = Examples(
    event_types=tuple(_DATA),
    body=body,
    sign=sign,
    source={"secrets": [f"{SECRET_PREFIX}${{SECRET}}"]},
)
