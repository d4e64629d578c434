"""A request as received (its head alone, before the body is read, or whole), and what
verification decides of it: accept (and how the request was authenticated) or reject, with
a reason. Also the rule of which headers are never kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from hookbus.rawevent import AuthMethod

__all__ = [
    "NEVER_KEPT_HEADERS",
    "Accept",
    "RawRequest",
    "Reason",
    "Reject",
    "RequestHead",
    "Verdict",
    "never_kept_headers",
]

# Headers that carry credentials or session state: never written to Kafka, whatever a
# source's configuration asks for.
NEVER_KEPT_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def never_kept_headers(required_headers: Iterable[str]) -> frozenset[str]:
    """Lowercase names of the headers whose values never leave the gateway for a source with
    these required headers: the credentials above, and the required headers themselves,
    which users fill with shared tokens; they are judged (in constant time) and dropped."""
    return NEVER_KEPT_HEADERS.union(name.lower() for name in required_headers)


class Reason(StrEnum):
    """Machine-readable rejection reasons, stable across versions: clients may match on them."""

    UNKNOWN_SOURCE = "unknown_source"
    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_API_KEY = "bad_api_key"
    IP_NOT_ALLOWED = "ip_not_allowed"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HEADER_NOT_ALLOWED = "header_not_allowed"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class Accept:
    auth: AuthMethod


@dataclass(frozen=True, slots=True)
class Reject:
    reason: Reason
    detail: str


Verdict = Accept | Reject


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What is known of a request before its body is read: enough for every check but the
    signature (:func:`ingest.decision.decide_head`). Fields as in :class:`RawRequest`."""

    method: str
    client_addr: str
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: _NO_HEADERS)
    query: MultiDictProxy[str] = field(default_factory=lambda: _NO_QUERY)
    declared_length: int | None = None
    """The body's length as the sender announced it (Content-Length), ``None`` when it did
    not (a chunked body)."""

    def with_body(self, body: bytes) -> RawRequest:
        """The whole request, once its body is read."""
        return RawRequest(
            method=self.method, body=body, client_addr=self.client_addr, headers=self.headers, query=self.query
        )


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A request exactly as received: the body is never decoded or re-encoded before verification.

    ``client_addr`` is the address verification trusts: the socket peer, or the
    X-Forwarded-For address when the peer is a trusted proxy. Header values and query
    parameters are the received bytes as lossless text (UTF-8 with ``surrogateescape``, see
    :mod:`hookbus.rawevent`): aiohttp decodes header bytes that way, and the gateway parses
    the query with :func:`hookbus.rawevent.parse_query`.
    """

    method: str
    body: bytes
    client_addr: str
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: _NO_HEADERS)
    query: MultiDictProxy[str] = field(default_factory=lambda: _NO_QUERY)

    @property
    def head(self) -> RequestHead:
        """The request before its body; the declared length is the body's, as it arrived."""
        return RequestHead(
            method=self.method,
            client_addr=self.client_addr,
            headers=self.headers,
            query=self.query,
            declared_length=len(self.body),
        )

    @classmethod
    def build(
        cls,
        *,
        method: str,
        body: bytes,
        client_addr: str,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> RawRequest:
        """From plain mappings (the vector files, tests); header names become case-insensitive."""
        return cls(
            method=method.upper(),
            body=body,
            client_addr=client_addr,
            headers=CIMultiDictProxy(CIMultiDict(headers or {})),
            query=MultiDictProxy(MultiDict(query or {})),
        )
