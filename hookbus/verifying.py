"""The verifier contract, and the helpers every provider's verifier shares.

A provider's :class:`Verifier` judges the provider-specific part of a request (its
signature and timestamp). What every source shares (method, IP allowlist, API key, required
headers, size) is judged by the gateway before it, which calls the verifier last.
Verifiers are pure functions of the raw bytes, the headers and the current time.

The helpers below are the only place that compares secrets, decodes signatures and checks
timestamps, so every provider gets the same constant-time comparisons and the same rules:
a signature header sent twice is malformed, any configured secret may have signed (key
rotation), and a timestamp too far from now in either direction is stale.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from hookbus.config import Secret, SourceConfig
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict

__all__ = [
    "SIGNATURE_DECODERS",
    "Verifier",
    "as_bytes",
    "check_hmac",
    "check_timestamp",
    "fixed_headers",
    "per_source",
    "single_header",
]

_T = TypeVar("_T")

# A Unix time in milliseconds has 13 digits; anything much longer is not a timestamp, and
# refusing it early keeps int() away from attacker-sized numbers.
_MAX_TIMESTAMP_DIGITS = 20
# Millisecond timestamps become floats; this absorbs their rounding so that a timestamp
# exactly at the edge of the tolerance is accepted, as documented.
_CLOCK_SLACK_SECONDS = 1e-6
# Sources are few and live as long as the process; the bound only protects tools that
# build sources on the fly (tests, `hookbus verify` on many files).
_PER_SOURCE_CACHE_LIMIT = 1024


def _no_options(source: SourceConfig) -> None:
    """Providers without options of their own have nothing to check at startup."""


def _authenticates_when_signed(source: SourceConfig) -> bool:
    return bool(source.secrets)


@dataclass(frozen=True, slots=True)
class Verifier:
    """The provider-specific part of verification.

    ``verify(source, request, now)`` returns ``Accept(AuthMethod.SIGNATURE)`` when it
    verified a signature, ``Accept(AuthMethod.NONE)`` when the provider has nothing of its
    own to check (the caller then names the method that did authenticate), or a
    :class:`~hookbus.request.Reject`. It may assume ``check_options`` passed at startup.

    ``kept_headers(source)`` names, in lowercase, the request headers needed to verify the
    request again later (and to map it); the gateway keeps them in the raw event.

    ``check_options(source)`` raises :class:`~hookbus.errors.ConfigError` at startup when
    the source's provider-specific configuration cannot work.

    ``authenticates(source)`` tells whether :attr:`verify` itself authenticates the source's
    requests (it checks a signature with the source's secrets). A source whose requests
    nothing authenticates is refused at startup unless it opens itself explicitly.
    """

    verify: Callable[[SourceConfig, RawRequest, float], Verdict]
    kept_headers: Callable[[SourceConfig], frozenset[str]]
    check_options: Callable[[SourceConfig], None] = _no_options
    authenticates: Callable[[SourceConfig], bool] = _authenticates_when_signed


def fixed_headers(*names: str) -> Callable[[SourceConfig], frozenset[str]]:
    """``kept_headers`` for a provider whose headers do not depend on the source."""
    kept = frozenset(name.lower() for name in names)

    def kept_headers(source: SourceConfig) -> frozenset[str]:
        return kept

    return kept_headers


def per_source(build: Callable[[SourceConfig], _T]) -> Callable[[SourceConfig], _T]:
    """Memoize ``build(source)`` so configuration is read once per source, not per request.

    Sources are frozen but not hashable (they hold mappings), so they are cached by
    identity; the cache keeps each source alive, so its id cannot be reused meanwhile.
    """
    cache: dict[int, tuple[SourceConfig, _T]] = {}

    @functools.wraps(build)
    def cached(source: SourceConfig) -> _T:
        entry = cache.get(id(source))
        if entry is not None:
            return entry[1]
        value = build(source)
        if len(cache) >= _PER_SOURCE_CACHE_LIMIT:
            cache.clear()
        cache[id(source)] = (source, value)
        return value

    return cached


def as_bytes(text: str) -> bytes:
    """A header or query value as bytes for a constant-time comparison.

    ``surrogatepass`` never fails, whatever the client sent, and still maps different
    strings to different bytes.
    """
    return text.encode("utf-8", "surrogatepass")


def single_header(request: RawRequest, name: str) -> str | Reject:
    """The one value of a signature header: missing, or sent twice (ambiguous), is a rejection."""
    values = request.headers.getall(name, ())
    if not values:
        return Reject(Reason.MISSING_SIGNATURE, f"no {name} header")
    if len(values) > 1:
        return Reject(Reason.MALFORMED_SIGNATURE, f"{name} is sent {len(values)} times")
    return values[0]


def check_timestamp(text: str, *, header: str, per_second: int, source: SourceConfig, now: float) -> Reject | None:
    """Reject a timestamp that is not a whole number of seconds (or ``per_second``-ths of a
    second), or that is further from ``now`` than the source's tolerance, in either direction:
    a timestamp from the future is as suspect as an old one."""
    if not (0 < len(text) <= _MAX_TIMESTAMP_DIGITS and text.isascii() and text.isdigit()):
        return Reject(Reason.MALFORMED_SIGNATURE, f"{header} is not a Unix timestamp")
    skew = now - int(text) / per_second
    if abs(skew) > source.tolerance_seconds + _CLOCK_SLACK_SECONDS:
        direction = "old" if skew > 0 else "in the future"
        return Reject(
            Reason.STALE_TIMESTAMP,
            f"{header} is {abs(skew):.0f}s {direction} (tolerance {source.tolerance_seconds:g}s)",
        )
    return None


def _decode_base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# Both raise ValueError on anything that is not their alphabet, including non-ASCII text;
# hex decoding is case-insensitive, so an uppercase hex signature is accepted.
SIGNATURE_DECODERS: Mapping[str, Callable[[str], bytes]] = {
    "hex": binascii.a2b_hex,
    "base64": _decode_base64,
}


def check_hmac(
    source: SourceConfig,
    received: str,
    signed: Iterable[bytes],
    *,
    header: str,
    algorithm: str = "sha256",
    encoding: str = "hex",
) -> Verdict:
    """Accept when ``received`` is the HMAC of the concatenated ``signed`` parts under any of
    the source's secrets.

    Every secret is tried and compared with :func:`hmac.compare_digest`, whichever matched,
    so the time taken does not tell which secret signed. A signature of the wrong length
    (another algorithm) is a bad signature, not a malformed one.
    """
    try:
        signature = SIGNATURE_DECODERS[encoding](received)
    except ValueError:
        return Reject(Reason.MALFORMED_SIGNATURE, f"{header} is not {encoding}")
    if not signature:
        return Reject(Reason.MALFORMED_SIGNATURE, f"{header} is empty")
    parts = tuple(signed)
    matched = False
    for secret in source.secrets:
        matched |= hmac.compare_digest(_hmac(secret, algorithm, parts), signature)
    if matched:
        return Accept(AuthMethod.SIGNATURE)
    return Reject(Reason.BAD_SIGNATURE, f"{header} does not match the request")


def _hmac(secret: Secret, algorithm: str, parts: tuple[bytes, ...]) -> bytes:
    # Fed part by part: the body is never copied to prepend or append to it.
    mac = hmac.new(secret.value, digestmod=algorithm)
    for part in parts:
        mac.update(part)
    return mac.digest()
