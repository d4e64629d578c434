"""The decision: accept or reject one request for one source.

:func:`decide` is the only code that judges a request; the gateway and ``hookbus verify``
both call it, so a vector file judged offline gets the answer the gateway would give.

The checks run in this order, cheapest and least revealing first, so that nobody learns
anything about a credential before presenting the ones that come earlier:

1. the method (``method_not_allowed``);
2. the body size (``too_large``; the gateway also stops reading at this size);
3. the client address against the IP allowlist (``ip_not_allowed``; an address that does
   not parse is not allowed);
4. the API key, when the source has one (``bad_api_key``): the ``api-key`` query parameter
   or the ``X-API-Key`` header; every key presented must be the right one;
5. the required headers (``header_not_allowed``), after the API key because users put
   shared tokens in them too;
6. the provider's own verification (signature and timestamp).

Every comparison with a configured value is constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict, never_kept_headers
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
        kept_headers=verifier.kept_headers(source) - never_kept_headers(source.required_headers),
    )


def decide(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    """Accept ``request`` (saying how it was authenticated) or reject it with a reason.

    ``now`` is the Unix time in seconds at which the request arrived. Never raises for any
    request, however malformed; ``source`` is expected to have passed :func:`check_sources`.
    """
    plan = _plan(source)
    if request.method not in source.methods:
        return Reject(Reason.METHOD_NOT_ALLOWED, f"{request.method} is not one of {', '.join(source.methods)}")
    if len(request.body) > source.max_body_bytes:
        return Reject(Reason.TOO_LARGE, f"the body is larger than {source.max_body_bytes} bytes")
    if source.ip_allowlist:
        address = parse_address(request.client_addr)
        if address is None or not in_networks(address, source.ip_allowlist):
            return Reject(Reason.IP_NOT_ALLOWED, f"{request.client_addr or 'an unknown address'} is not allowed")
    if plan.api_key is not None and (rejected := _check_api_key(plan.api_key, request)) is not None:
        return rejected
    for name, expected in plan.required_headers:
        values = request.headers.getall(name, ())
        if len(values) != 1 or not hmac.compare_digest(as_bytes(values[0]), expected):
            return Reject(Reason.HEADER_NOT_ALLOWED, f"{name} is missing, repeated or has another value")
    verdict = plan.verifier.verify(source, request, now)
    if isinstance(verdict, Reject) or verdict.auth is AuthMethod.SIGNATURE:
        return verdict
    return plan.accept_unsigned


def _check_api_key(expected: bytes, request: RawRequest) -> Reject | None:
    presented = [*request.query.getall(API_KEY_PARAMETER, ()), *request.headers.getall(API_KEY_HEADER, ())]
    if not presented:
        return Reject(Reason.BAD_API_KEY, f"no API key (query parameter {API_KEY_PARAMETER} or {API_KEY_HEADER})")
    matched = True
    for key in presented:
        matched &= hmac.compare_digest(as_bytes(key), expected)
    return None if matched else Reject(Reason.BAD_API_KEY, "the API key is not the source's")


def kept_headers(source: SourceConfig) -> frozenset[str]:
    """Lowercase names of the headers the gateway keeps in the raw event for ``source``:
    those its verifier names, less the credentials and the required headers."""
    return _plan(source).kept_headers


def check_sources(sources: Iterable[SourceConfig], *, file: str | None = None) -> None:
    """Check every source's provider-specific options; run at startup, before serving.

    Raises :class:`ConfigError` naming the source and the key (and ``file``, when given).
    """
    for source in sources:
        try:
            verifier = provider(source.provider).verifier
            verifier.check_options(source)
            _check_required_headers_are_not_read(source, verifier)
        except ConfigError as exc:
            raise exc.located(file=file, source=source.name) from exc


def _check_required_headers_are_not_read(source: SourceConfig, verifier: Verifier) -> None:
    # A required header's value is never kept, so a mapping (or a re-verification) that
    # reads one would fail on every event: better said at startup.
    read = verifier.kept_headers(source) & {name.lower() for name in source.required_headers}
    if read:
        raise ConfigError(
            f"{', '.join(sorted(read))}: a required header's value is judged and never kept, so nothing may read it",
            key="required_headers",
        )
