"""Realistic, signed webhook requests for every provider, and the configuration that accepts them.

Requests are signed when a stage is about to send them (the sources' timestamps are checked),
and the bench sources also allow a generous clock skew (``TOLERANCE_SECONDS``) so a long
full-mode stage never turns into a test of stale timestamps. The secrets are bench-only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from hookbus.rawevent import AuthMethod, RawEvent

TOLERANCE_SECONDS = 3600
OCTOBER_SECRET = "bench-october-secret-0123456789ab"  # noqa: S105 - bench-only
OFFICERND_SECRET = "bench-officernd-secret-0123456789"  # noqa: S105 - bench-only
OFFERTE_SECRET = "bench-offerte-secret-0123456789ab"  # noqa: S105 - bench-only
OCTAMILE_API_KEY = "bench-octamile-api-key-0123456789"
CERTIFICATE_BYTES = 5 * 1024 * 1024
KIB = 1024


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to a source, exactly as it goes on the wire."""

    source: str
    provider: str
    body: bytes
    headers: Mapping[str, str]
    query: str = ""
    auth: AuthMethod = AuthMethod.SIGNATURE
    kept: Mapping[str, str] = field(default_factory=dict)

    def vegeta_target(self, base_url: str) -> bytes:
        """One line of vegeta's JSON target format."""
        url = f"{base_url}/webhooks/{self.source}" + (f"?{self.query}" if self.query else "")
        target = {
            "method": "POST",
            "url": url,
            "header": {name: [value] for name, value in self.headers.items()},
            "body": base64.b64encode(self.body).decode("ascii"),
        }
        return orjson.dumps(target)

    def raw_event(self) -> RawEvent:
        """The raw event the gateway would write for this request (to preload the raw topic)."""
        return RawEvent(
            source=self.source,
            provider=self.provider,
            ingest_id=str(uuid.uuid4()),
            received_at=time.time(),
            body=self.body,
            content_type="application/json",
            client_addr="127.0.0.1",
            auth=self.auth,
            headers=self.kept,
        )


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _padded(document: dict[str, Any], pad_path: tuple[str, ...], size: int) -> bytes:
    """``document`` as JSON, with the string at ``pad_path`` grown so the body is ``size`` bytes."""
    leaf = document
    for key in pad_path[:-1]:
        leaf = leaf[key]
    leaf[pad_path[-1]] = ""
    missing = max(0, size - len(orjson.dumps(document)))
    leaf[pad_path[-1]] = "x" * missing
    return orjson.dumps(document)


def october(size: int, number: int) -> Request:
    document = {
        "event": "update_request",
        "requestId": f"req{number:021d}",
        "diff": {"property": "status", "after": ""},
    }
    body = _padded(document, ("diff", "after"), size)
    timestamp = str(int(time.time() * 1000))
    signature = _hex_hmac(OCTOBER_SECRET, timestamp.encode() + body)
    headers = {"Content-Type": "application/json", "X-O5R-TIMESTAMP": timestamp, "X-O5R-HASH": signature}
    kept = {"x-o5r-timestamp": timestamp, "x-o5r-hash": signature}
    return Request("october", "october", body, headers, kept=kept)


def officernd(size: int, number: int) -> Request:
    document = {
        "event": f"{number:024x}",
        "eventType": "member.updated",
        "data": {
            "object": {
                "_id": f"{number + 1:024x}",
                "status": "active",
                "calculatedStatus": "drop-in",
                "team": "5e8c9eb94d46c7001064c427",
                "office": "5e1d8bd37f8759001051b0e2",
                "name": "Bench Member",
                "email": "member@example.com",
                "description": "",
            },
            "previousAttributes": {"status": "pending"},
        },
        "createdAt": "2026-01-05T09:12:44.000Z",
    }
    body = _padded(document, ("data", "object", "description"), size)
    timestamp = str(int(time.time()))
    signature = _hex_hmac(OFFICERND_SECRET, body + b"." + timestamp.encode())
    value = f"t={timestamp},signature={signature}"
    headers = {"Content-Type": "application/json", "officernd-signature": value}
    return Request("officernd", "officernd", body, headers, kept={"officernd-signature": value})


def offerte_adviseur(size: int, number: int) -> Request:
    document = {
        "id": f"lead{number:012d}",
        "type": "lead.created",
        "payload": {
            "lead_id": number,
            "website_code": "1cd440df63f796a1f69da652cd0209",
            "subcategory_id": "1",
            "created_at": "2026-01-05T09:12:44Z",
            "note": "",
        },
    }
    body = _padded(document, ("payload", "note"), size)
    signature = _hex_hmac(OFFERTE_SECRET, body)
    headers = {"Content-Type": "application/json", "x-offerte-adviseur-signature": signature}
    return Request(
        "offerte_adviseur", "offerte_adviseur", body, headers, kept={"x-offerte-adviseur-signature": signature}
    )


def octamile(number: int, *, certificate_bytes: int = 0) -> Request:
    """An approved Octamile request; with ``certificate_bytes`` a base64 PDF of about that size."""
    document: dict[str, Any] = {
        "product": "vhcl-tprt-1111",
        "consumerId": f"{number:032x}",
        "trnsctnId": f"{number + 7:032x}",
        "status": "a" if certificate_bytes else "d",
        "statusNote": "",
    }
    if certificate_bytes:
        raw = os.urandom(certificate_bytes * 3 // 4)
        document["crtfct"] = base64.b64encode(raw).decode("ascii")
        document["crtfctType"] = "pdf"
    body = orjson.dumps(document)
    headers = {"Content-Type": "application/json"}
    return Request("octamile", "octamile", body, headers, query=f"api-key={OCTAMILE_API_KEY}", auth=AuthMethod.API_KEY)


def mix(count: int, *, size: int = KIB, start: int = 0) -> Iterator[Request]:
    """A realistic mix of all providers: October and OfficeRnD most, then Offerte Adviseur, Octamile.

    Requests numbered from ``start`` on are distinct from those before it.
    """
    for number in range(start, start + count):
        slot = number % 10
        if slot < 4:
            yield october(size, number)
        elif slot < 7:
            yield officernd(size, number)
        elif slot < 9:
            yield offerte_adviseur(size, number)
        else:
            yield octamile(number)


def sources_config(*, max_body_bytes: int = 8 * 1024 * 1024) -> list[dict[str, Any]]:
    """The ``sources:`` section accepting every request made here."""
    # Spooling is off: every accepted request is measured through the broker's acknowledgement.
    common = {"tolerance_seconds": TOLERANCE_SECONDS, "max_body_bytes": max_body_bytes, "spool": False}
    return [
        {"name": "october", "provider": "october", "secrets": [OCTOBER_SECRET], **common},
        {"name": "officernd", "provider": "officernd", "secrets": [OFFICERND_SECRET], **common},
        {"name": "offerte_adviseur", "provider": "offerte_adviseur", "secrets": [OFFERTE_SECRET], **common},
        {"name": "octamile", "provider": "octamile", "api_key": OCTAMILE_API_KEY, **common},
    ]
