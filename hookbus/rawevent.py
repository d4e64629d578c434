"""The raw event: an accepted request as the gateway writes it to the raw topic.

This is the contract between the gateway and the normalizer (and ``hookbus replay``).
The Kafka record value is the request body, byte for byte as received; everything else
travels in Kafka headers named ``hookbus-*``. The provider headers needed to verify the
request again travel as ``hookbus-h-<lowercase name>``, their values byte for byte as
received. No API key, no secret and no required-header value is ever in a raw event.

Text and bytes: HTTP header values and query parameters are bytes, and nothing makes a
sender use UTF-8. Readers of a raw event get text, so every such value is held as its bytes
decoded as UTF-8 with ``surrogateescape`` (what aiohttp gives the gateway): valid UTF-8
reads as itself, and each byte that is not part of valid UTF-8 reads as one lone surrogate
U+DC80..U+DCFF. ``text.encode("utf-8", "surrogateescape")`` (:func:`wire_bytes`) gives the
exact bytes back, and :meth:`RawEvent.header_bytes` does it for a kept header. Nothing is
replaced and nothing raises, so no request is refused or lost for the bytes it carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qsl, quote_plus

from multidict import MultiDict, MultiDictProxy

from hookbus.errors import HookbusError

__all__ = [
    "CREDENTIAL_QUERY_PARAMETERS",
    "HEADER_PREFIX",
    "KEPT_HEADER_PREFIX",
    "SOURCE_HEADER",
    "AuthMethod",
    "RawEvent",
    "RawEventError",
    "format_time",
    "parse_query",
    "parse_time",
    "text_of",
    "wire_bytes",
    "without_credentials",
]

HEADER_PREFIX = "hookbus-"
KEPT_HEADER_PREFIX = "hookbus-h-"
SOURCE_HEADER = "hookbus-source"
# Query parameters that carry credentials; they never leave the gateway.
CREDENTIAL_QUERY_PARAMETERS = frozenset({"api-key", "api_key", "apikey", "token", "access_token"})
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


def wire_bytes(text: str) -> bytes:
    """The bytes a header value or query parameter was received as (see the module's docstring).

    Never raises: a lone surrogate that no byte decodes to (a string that did not come from
    the wire, such as a JSON ``\\ud800`` escape in a vector file) is kept with ``surrogatepass``.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def text_of(raw: bytes) -> str:
    """Received bytes as text, losslessly: the inverse of :func:`wire_bytes`."""
    return raw.decode("utf-8", "surrogateescape")


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
    """Provider headers kept for later verification and mapping, by lowercase name; of a
    header sent several times, the first value. Values are text as the module's docstring
    says (:meth:`header_bytes` gives the bytes received)."""
    query: Mapping[str, str] = field(default_factory=lambda: _NO_QUERY)
    """The query parameters without credentials: every one, repeated names included, in the
    order received (a :class:`~multidict.MultiDictProxy` when the gateway or
    :meth:`from_kafka` built it: ``items()`` gives them all, ``getall(name)`` one name's).
    Names and values are percent-decoded, as text the way the module's docstring says."""
    entity: str | None = None
    """The entity the request is about, as its provider reads it at the gateway (the partition
    key its mapper gives the event); ``None`` when it cannot tell. Only the record key carries it."""

    def header_bytes(self, name: str) -> bytes | None:
        """The value of the kept header ``name`` exactly as received, or ``None``."""
        value = self.headers.get(name.lower())
        return None if value is None else wire_bytes(value)

    @property
    def received_at_iso(self) -> str:
        return format_time(self.received_at)

    @property
    def kafka_key(self) -> bytes:
        """``<source>/<entity>``, or the source alone when the entity is unknown: one entity's
        raw events share a partition, so the normalizer sees them in the order the gateway
        acknowledged them; the source prefix keeps two sources' entities apart."""
        if self.entity is None:
            return wire_bytes(self.source)
        return wire_bytes(f"{self.source}/{self.entity}")

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """The record's headers. Never raises: every text goes through :func:`wire_bytes`,
        so an accepted request always has a record to publish or to spool."""
        headers = [
            (SOURCE_HEADER, wire_bytes(self.source)),
            ("hookbus-provider", wire_bytes(self.provider)),
            ("hookbus-ingest-id", wire_bytes(self.ingest_id)),
            ("hookbus-received-at", wire_bytes(self.received_at_iso)),
            ("hookbus-content-type", wire_bytes(self.content_type)),
            ("hookbus-client-addr", wire_bytes(self.client_addr)),
            ("hookbus-method", wire_bytes(self.method)),
            ("hookbus-auth", wire_bytes(self.auth.value)),
        ]
        if self.query:
            headers.append(("hookbus-query", _query_string(self.query.items()).encode("ascii")))
        headers.extend((KEPT_HEADER_PREFIX + name.lower(), wire_bytes(value)) for name, value in self.headers.items())
        return headers

    @classmethod
    def from_kafka(cls, headers: Sequence[tuple[str, bytes]] | None, value: bytes | None) -> RawEvent:
        """Rebuild a raw event from a Kafka record; :class:`RawEventError` when it is not one."""
        fields: dict[str, str] = {}
        kept: dict[str, str] = {}
        for name, raw in headers or ():
            text = text_of(raw) if raw is not None else ""
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
            query=parse_query(fields.get("query", "")),
        )


def parse_query(query_string: str) -> MultiDictProxy[str]:
    """Every parameter of a percent-encoded query string, in order, repeated names included;
    percent-escapes that are not UTF-8 decode as the module's docstring says, so nothing is
    replaced. The gateway judges and keeps the query as this parses it."""
    # Most requests have no query: parsing an empty one costs as much as a short one.
    if not query_string:
        return _NO_QUERY
    return MultiDictProxy(MultiDict(parse_qsl(query_string, keep_blank_values=True, errors="surrogateescape")))


def _query_string(parameters: Iterable[tuple[str, str]]) -> str:
    # In the order received; quote_plus takes bytes, so no value can fail to encode.
    return "&".join(f"{quote_plus(wire_bytes(name))}={quote_plus(wire_bytes(value))}" for name, value in parameters)


def format_time(unix_seconds: float) -> str:
    """RFC 3339 in UTC with microseconds, as CloudEvents ``time`` wants it."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise RawEventError(f"{text!r} is not an RFC 3339 time") from exc


def without_credentials(query: Iterable[tuple[str, str]]) -> MultiDictProxy[str]:
    """The parameters that carry no credential, every one in order."""
    kept = [(name, value) for name, value in query if name.lower() not in CREDENTIAL_QUERY_PARAMETERS]
    return MultiDictProxy(MultiDict(kept)) if kept else _NO_QUERY
