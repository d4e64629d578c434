"""The raw event: an accepted request as the gateway writes it to the raw topic.

This is the contract between the gateway and the normalizer (and ``hookbus replay``).
The Kafka record value is the request body, byte for byte as received; everything else
travels in Kafka headers named ``hookbus-*``. The provider headers needed to verify the
request again travel as ``hookbus-h-<lowercase name>``. No API key and no secret is ever
in a raw event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

from hookbus.errors import HookbusError

__all__ = [
    "CREDENTIAL_QUERY_PARAMETERS",
    "HEADER_PREFIX",
    "KEPT_HEADER_PREFIX",
    "AuthMethod",
    "RawEvent",
    "RawEventError",
    "format_time",
    "parse_time",
    "without_credentials",
]

HEADER_PREFIX = "hookbus-"
KEPT_HEADER_PREFIX = "hookbus-h-"
# Query parameters that carry credentials; they never leave the gateway.
CREDENTIAL_QUERY_PARAMETERS = frozenset({"api-key", "api_key", "apikey", "token", "access_token"})


class AuthMethod(StrEnum):
    """How the gateway authenticated a request; carried into the canonical event."""

    SIGNATURE = "signature"
    API_KEY = "api_key"
    IP_ALLOWLIST = "ip_allowlist"
    NONE = "none"


class RawEventError(HookbusError):
    """A Kafka record is not a raw event hookbus wrote (a header is missing or malformed)."""

    reason = "not_a_raw_event"


@dataclass(frozen=True, slots=True)
class RawEvent:
    source: str
    provider: str
    ingest_id: str
    received_at: float
    """Unix time in seconds at which the gateway finished reading the request."""
    body: bytes
    content_type: str = ""
    client_addr: str = ""
    method: str = "POST"
    auth: AuthMethod = AuthMethod.NONE
    headers: Mapping[str, str] = field(default_factory=dict)
    """Provider headers kept for later verification and mapping, by lowercase name."""
    query: Mapping[str, str] = field(default_factory=dict)
    """The query string without credentials."""

    @property
    def received_at_iso(self) -> str:
        return format_time(self.received_at)

    @property
    def kafka_key(self) -> bytes:
        # One source's raw events share a partition, so the normalizer sees them in the
        # order the gateway acknowledged them.
        return self.source.encode("utf-8")

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("hookbus-source", self.source.encode("utf-8")),
            ("hookbus-provider", self.provider.encode("utf-8")),
            ("hookbus-ingest-id", self.ingest_id.encode("utf-8")),
            ("hookbus-received-at", self.received_at_iso.encode("utf-8")),
            ("hookbus-content-type", self.content_type.encode("utf-8")),
            ("hookbus-client-addr", self.client_addr.encode("utf-8")),
            ("hookbus-method", self.method.encode("utf-8")),
            ("hookbus-auth", self.auth.value.encode("utf-8")),
        ]
        if self.query:
            headers.append(("hookbus-query", urlencode(sorted(self.query.items())).encode("utf-8")))
        headers.extend(
            (KEPT_HEADER_PREFIX + name.lower(), value.encode("utf-8")) for name, value in self.headers.items()
        )
        return headers

    @classmethod
    def from_kafka(cls, headers: Sequence[tuple[str, bytes]] | None, value: bytes | None) -> RawEvent:
        """Rebuild a raw event from a Kafka record; :class:`RawEventError` when it is not one."""
        fields: dict[str, str] = {}
        kept: dict[str, str] = {}
        for name, raw in headers or ():
            try:
                text = raw.decode("utf-8") if raw is not None else ""
            except UnicodeDecodeError as exc:
                raise RawEventError(f"header {name} is not UTF-8") from exc
            if name.startswith(KEPT_HEADER_PREFIX):
                kept[name[len(KEPT_HEADER_PREFIX) :]] = text
            elif name.startswith(HEADER_PREFIX):
                fields[name[len(HEADER_PREFIX) :]] = text
        missing = [name for name in ("source", "provider", "ingest-id", "received-at") if not fields.get(name)]
        if missing:
            raise RawEventError(f"missing header(s): {', '.join('hookbus-' + name for name in missing)}")
        try:
            auth = AuthMethod(fields.get("auth", "none"))
        except ValueError as exc:
            raise RawEventError(f"unknown hookbus-auth {fields.get('auth')!r}") from exc
        return cls(
            source=fields["source"],
            provider=fields["provider"],
            ingest_id=fields["ingest-id"],
            received_at=parse_time(fields["received-at"]),
            body=value or b"",
            content_type=fields.get("content-type", ""),
            client_addr=fields.get("client-addr", ""),
            method=fields.get("method", "POST"),
            auth=auth,
            headers=kept,
            query=_query_of(fields.get("query", "")),
        )


def _query_of(text: str) -> dict[str, str]:
    # Most requests have no query: parsing an empty one costs as much as a short one.
    return dict(parse_qsl(text, keep_blank_values=True)) if text else {}


def format_time(unix_seconds: float) -> str:
    """RFC 3339 in UTC with microseconds, as CloudEvents ``time`` wants it."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise RawEventError(f"{text!r} is not an RFC 3339 time") from exc


def without_credentials(query: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name: value for name, value in query if name.lower() not in CREDENTIAL_QUERY_PARAMETERS}
