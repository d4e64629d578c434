"""The decision: accept or reject one request for one source.

:func:`decide` is the only code that judges a request; the gateway and ``hookbus verify``
both reach it, so a vector file judged offline gets the answer the gateway would give. It
is made of two parts, which the gateway calls on their own: :func:`decide_head`, the checks
that need no body, which the gateway makes before it reads the body (and before it answers
``Expect: 100-continue``), so a refused sender never gets to send it; and
:func:`decide_body`, the rest.

The checks run in this order, cheapest and least revealing first, so that nobody learns
anything about a credential before presenting the ones that come earlier:

1. the method (``method_not_allowed``);
2. the declared body size (``too_large``): the Content-Length the sender announced, or
   offline the length of the body;
3. the client address against the IP allowlist (``ip_not_allowed``; an address that does
   not parse is not allowed);
4. the API key, when the source has one (``bad_api_key``): the ``api-key`` query parameter
   or the ``X-API-Key`` header; every key presented must be the right one;
5. the required headers (``header_not_allowed``), after the API key because users put
   shared tokens in them too;

   (the gateway reads the body here, and refuses ``too_large`` while reading a body
   whose length was not declared;)
6. the body size (``too_large``), for a body whose length was not declared;
7. the provider's own verification (signature and timestamp).

Steps 1 to 5 are :func:`decide_head`, 6 and 7 :func:`decide_body`. Every comparison with a
configured value is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, RequestHead, Verdict, never_kept_headers
from hookbus.tracecontext import TRACE_HEADERS
from hookbus.verifying import Verifier, as_bytes, per_source
from ingest.clientaddr import in_networks, parse_address

API_KEY_PARAMETER = "api-key"
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True, slots=True)
class _Plan:
    """What :func:`decide` needs from a source, read once per source."""

    verifier: Verifier
    api_key: bytes | None
    required_headers: tuple[tuple[str, bytes], ...]
    accept_unsigned: Accept
    """The verdict when the provider verified no signature: it names what did authenticate."""
    kept_headers: frozenset[str]


@per_source
def _plan(source: SourceConfig) -> _Plan:
    if source.api_key is not None:
        auth = AuthMethod.API_KEY
    elif source.ip_allowlist:
        auth = AuthMethod.IP_ALLOWLIST
    else:
        auth = AuthMethod.NONE
    verifier = provider(source.provider).verifier
    return _Plan(
        verifier=verifier,
        api_key=None if source.api_key is None else source.api_key.value,
        required_headers=tuple((name, as_bytes(value)) for name, value in source.required_headers.items()),
        accept_unsigned=Accept(auth),
        # The trace context travels on whatever the provider: see hookbus.tracecontext.
        kept_headers=(verifier.kept_headers(source) | TRACE_HEADERS) - never_kept_headers(source.required_headers),
    )


def decide(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    """Accept ``request`` (saying how it was authenticated) or reject it with a reason.

    ``now`` is the Unix time in seconds at which the request arrived. Never raises for any
    request, however malformed; ``source`` is expected to have passed :func:`check_sources`.
    """
    rejected = decide_head(source, request.head)
    return rejected if rejected is not None else decide_body(source, request, now)


def decide_head(source: SourceConfig, head: RequestHead) -> Reject | None:
    """Steps 1 to 5, which need no body: the rejection, or ``None`` to go on with
    :func:`decide_body` once the body is read. Never raises."""
    plan = _plan(source)
    if head.method not in source.methods:
        return Reject(Reason.METHOD_NOT_ALLOWED, f"{head.method} is not one of {', '.join(source.methods)}")
    if head.declared_length is not None and head.declared_length > source.max_body_bytes:
        return too_large(source)
    if source.ip_allowlist:
        address = parse_address(head.client_addr)
        if address is None or not in_networks(address, source.ip_allowlist):
            return Reject(Reason.IP_NOT_ALLOWED, f"{head.client_addr or 'an unknown address'} is not allowed")
    if plan.api_key is not None and (rejected := _check_api_key(plan.api_key, head)) is not None:
        return rejected
    for name, expected in plan.required_headers:
        values = head.headers.getall(name, ())
        if len(values) != 1 or not hmac.compare_digest(as_bytes(values[0]), expected):
            return Reject(Reason.HEADER_NOT_ALLOWED, f"{name} is missing, repeated or has another value")
    return None


def decide_body(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    """Steps 6 and 7, for a request whose head :func:`decide_head` let through. Never raises."""
    if len(request.body) > source.max_body_bytes:
        return too_large(source)
    plan = _plan(source)
    verdict = plan.verifier.verify(source, request, now)
    if isinstance(verdict, Reject) or verdict.auth is AuthMethod.SIGNATURE:
        return verdict
    return plan.accept_unsigned


def too_large(source: SourceConfig) -> Reject:
    """The refusal of a body larger than the source allows (declared, or found while reading)."""
    return Reject(Reason.TOO_LARGE, f"the body is larger than {source.max_body_bytes} bytes")


def _check_api_key(expected: bytes, head: RequestHead) -> Reject | None:
    presented = [*head.query.getall(API_KEY_PARAMETER, ()), *head.headers.getall(API_KEY_HEADER, ())]
    if not presented:
        return Reject(Reason.BAD_API_KEY, f"no API key (query parameter {API_KEY_PARAMETER} or {API_KEY_HEADER})")
    matched = True
    for key in presented:
        matched &= hmac.compare_digest(as_bytes(key), expected)
    return None if matched else Reject(Reason.BAD_API_KEY, "the API key is not the source's")


def kept_headers(source: SourceConfig) -> frozenset[str]:
    """Lowercase names of the headers the gateway keeps in the raw event for ``source``:
    those its verifier names and the trace context, less the credentials and the required headers."""
    return _plan(source).kept_headers


def check_sources(sources: Iterable[SourceConfig], *, file: str | None = None) -> None:
    """Check every source's provider-specific options; run at startup, before serving.

    Raises :class:`ConfigError` naming the source and the key (and ``file``, when given).
    """
    for source in sources:
        try:
            provider(source.provider).verifier.check_options(source)
        except ConfigError as exc:
            raise exc.located(file=file, source=source.name) from exc


def required_headers_read(source: SourceConfig) -> frozenset[str]:
    """The required headers that ``source``'s verifier (its signature or mapping) would read.
    Their values are never kept, so whatever reads them later finds nothing: the gateway
    warns of them at startup."""
    return _plan(source).verifier.kept_headers(source) & {name.lower() for name in source.required_headers}
