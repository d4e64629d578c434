"""Realistic, signed webhook requests for every provider, and the configuration that accepts them.

Each request is its provider's own example (:class:`hookbus.provider.Examples`: the body of
its first documented type, signed as the provider signs), padded to the size a case wants
with one extra top-level field, which every mapper keeps as it was sent. Nothing here is
written per provider, so a new provider of hookbus's own is benchmarked as soon as it has a
folder; third-party providers installed beside hookbus (the examples) are left out, so
that what is measured does not depend on what else is installed.

Requests are signed when a stage is about to send them (the sources' timestamps are checked),
and the bench sources also allow a generous clock skew (``TOLERANCE_SECONDS``) so a long
full-mode stage never turns into a test of stale timestamps. The secrets are bench-only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from hookbus.config import parse_source
from hookbus.provider import Credentials, provider
from hookbus.rawevent import AuthMethod, RawEvent
from providers import BUILT_IN

TOLERANCE_SECONDS = 3600
CERTIFICATE_BYTES = 5 * 1024 * 1024
KIB = 1024
PADDING_FIELD = "bench_padding"
CERTIFICATE_PROVIDER = "octamile"


def credentials(provider_name: str) -> Credentials:
    """The bench-only credentials of the bench source of ``provider_name``.

    The secret is 64 hex digits, as ``hookbus dev`` generates them: text every provider's
    example source takes (hex is also valid base64, for ``whsec_`` secrets).
    """
    secret = hashlib.sha256(f"bench-{provider_name}-secret".encode()).hexdigest()
    return Credentials(secret=secret.encode(), api_key=f"bench-{provider_name}-key")


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


def example(provider_name: str, size: int, number: int, *, document: dict[str, Any] | None = None) -> Request:
    """``provider_name``'s own example (or ``document``), padded to about ``size`` bytes and signed now.

    ``number`` only makes the padding, and so the body, distinct from other requests'.
    """
    item = provider(provider_name)
    event_type = item.examples.event_types[0]
    if document is None:
        document = item.examples.body(event_type, datetime.now(tz=UTC))
    document[PADDING_FIELD] = f"{number:012d}"
    missing = max(0, size - len(orjson.dumps(document)))
    document[PADDING_FIELD] += "x" * missing
    body = orjson.dumps(document)
    signed = item.examples.sign(body, event_type, credentials(provider_name), time.time())
    kept_names = item.verifier.kept_headers(_source(provider_name))
    kept = {name.lower(): value for name, value in signed.headers.items() if name.lower() in kept_names}
    auth = (
        AuthMethod.SIGNATURE
        if item.signs or item.verifier.authenticates(_source(provider_name))
        else AuthMethod.API_KEY
    )
    return Request(provider_name, provider_name, body, signed.headers, urlencode(signed.query), auth, kept)


def with_certificate(number: int, certificate_bytes: int) -> Request:
    """An approval of the certificate provider carrying a base64 certificate of about ``certificate_bytes``."""
    item = provider(CERTIFICATE_PROVIDER)
    document = item.examples.body(item.examples.event_types[0], datetime.now(tz=UTC))
    document["crtfct"] = base64.b64encode(os.urandom(certificate_bytes * 3 // 4)).decode("ascii")
    return example(CERTIFICATE_PROVIDER, 0, number, document=document)


def mix(count: int, *, size: int = KIB, start: int = 0) -> Iterator[Request]:
    """Every provider of hookbus's own in turn, its example about ``size`` bytes.

    Requests numbered from ``start`` on are distinct from those before it.
    """
    names = [item.name for item in BUILT_IN]
    for number in range(start, start + count):
        yield example(names[number % len(names)], size, number)


def _source_config(provider_name: str, *, max_body_bytes: int = 8 * 1024 * 1024) -> dict[str, Any]:
    given = credentials(provider_name)
    secret, api_key = (given.secret or b"").decode(), given.api_key or ""
    example_source = orjson.loads(
        orjson.dumps(provider(provider_name).examples.source)
        .replace(b"${SECRET}", secret.encode())
        .replace(b"${API_KEY}", api_key.encode())
    )
    # Spooling is off: every accepted request is measured through the broker's acknowledgement.
    return {
        "name": provider_name,
        "provider": provider_name,
        **example_source,
        "tolerance_seconds": TOLERANCE_SECONDS,
        "max_body_bytes": max_body_bytes,
        "spool": False,
    }


def _source(provider_name: str) -> Any:
    return parse_source(_source_config(provider_name))


def sources_config(*, max_body_bytes: int = 8 * 1024 * 1024) -> list[dict[str, Any]]:
    """The ``sources:`` section accepting every request made here: one source per provider of hookbus's own."""
    return [_source_config(item.name, max_body_bytes=max_body_bytes) for item in BUILT_IN]
