"""Builders for the decision and verifier tests: sources checked as at startup, requests, HMACs."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from hookbus.config import SourceConfig, parse_source
from hookbus.request import RawRequest
from ingest.decision import check_sources

Pairs = Mapping[str, str] | Sequence[tuple[str, str]]


def source_of(provider: str, **raw: Any) -> SourceConfig:
    """A source named ``test-<provider>``, parsed and checked exactly as at startup."""
    source = parse_source(raw, name=f"test-{provider}".replace("_", "-"), provider=provider)
    check_sources([source])
    return source


def request_of(
    body: bytes = b"",
    headers: Pairs = (),
    *,
    method: str = "POST",
    query: Pairs = (),
    client_addr: str = "198.51.100.7",
) -> RawRequest:
    """A request as received; headers and query given as pairs may repeat a name."""
    return RawRequest(
        method=method,
        body=body,
        client_addr=client_addr,
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        query=MultiDictProxy(MultiDict(query)),
    )


def hmac_of(secret: str, *parts: bytes, algorithm: str = "sha256") -> bytes:
    """The raw HMAC of the concatenated parts: the independent reference the verifiers must match."""
    return hmac.new(secret.encode(), b"".join(parts), getattr(hashlib, algorithm)).digest()
