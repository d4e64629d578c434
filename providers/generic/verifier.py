"""A configurable source, in the manner of Octolis inbound webhooks: API key, allowed
methods, required headers and IP allowlist (all judged by :func:`ingest.decision.decide`),
and optionally an HMAC signature in a header of the user's choosing::

    signature:
      header: X-Signature          # required
      algorithm: sha256            # sha256 (default), sha512 or sha1
      encoding: hex                # hex (default, any case) or base64
      prefix: "sha256="            # optional text before the signature in the header
      timestamp_header: X-Timestamp  # optional; see below
      timestamp_unit: s            # s (default) or ms

Without ``timestamp_header`` the HMAC covers the raw body. With it, the signed payload is
the timestamp header's value, a dot, and the raw body (``timestamp + "." + body``), and a
timestamp further from now than the source's ``tolerance_seconds`` is rejected. The
secrets are the source's ``secrets``; any of them may have signed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, check_timestamp, per_source, single_header

from .mapper import check_mapping_options, mapped_header_names

ALGORITHMS = ("sha256", "sha512", "sha1")
ENCODINGS = ("hex", "base64")
TIMESTAMP_UNITS: Mapping[str, int] = {"s": 1, "ms": 1000}
_SIGNATURE_KEYS = frozenset({"header", "algorithm", "encoding", "prefix", "timestamp_header", "timestamp_unit"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """The ``signature`` option, checked."""

    header: str
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    per_second: int = 1


def parse_signature(raw: Any) -> SignatureScheme:
    """The ``signature`` option from the configuration; :class:`ConfigError` names the field."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping, not {type(raw).__name__}", key="signature")
    for key in raw:
        if key not in _SIGNATURE_KEYS:
            raise ConfigError(f"unknown key; known: {', '.join(sorted(_SIGNATURE_KEYS))}", key=f"signature.{key}")
    header = _header_name(raw, "header")
    if header is None:
        raise ConfigError("is required", key="signature.header")
    timestamp_header = _header_name(raw, "timestamp_header")
    if timestamp_header is not None and timestamp_header.lower() == header.lower():
        raise ConfigError("must differ from signature.header", key="signature.timestamp_header")
    if "timestamp_unit" in raw and timestamp_header is None:
        raise ConfigError("needs signature.timestamp_header", key="signature.timestamp_unit")
    prefix = raw.get("prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"must be a string, not {type(prefix).__name__}", key="signature.prefix")
    return SignatureScheme(
        header=header,
        algorithm=_choice(raw, "algorithm", ALGORITHMS),
        encoding=_choice(raw, "encoding", ENCODINGS),
        prefix=prefix,
        timestamp_header=timestamp_header,
        per_second=TIMESTAMP_UNITS[_choice(raw, "timestamp_unit", tuple(TIMESTAMP_UNITS))],
    )


def _header_name(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ConfigError(f"{value!r} is not an HTTP header name", key=f"signature.{field}")
    return value


def _choice(raw: Mapping[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = raw.get(field, choices[0])
    if value not in choices:
        raise ConfigError(f"must be one of {', '.join(choices)}, not {value!r}", key=f"signature.{field}")
    return str(value)


@per_source
def _scheme(source: SourceConfig) -> SignatureScheme | None:
    raw = source.options.get("signature")
    return None if raw is None else parse_signature(raw)


def check_options(source: SourceConfig) -> None:
    # The mapping belongs to the mapper, which reads it; the gateway checks it at startup too,
    # since it keeps the headers the mapping names.
    check_mapping_options(source)
    if _scheme(source) is None:
        if source.secrets:
            raise ConfigError("secrets are only used with the signature option", key="secrets")
    elif not source.secrets:
        raise ConfigError("the signature option needs at least one secret", key="secrets")


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    scheme = _scheme(source)
    if scheme is None:
        return Accept(AuthMethod.NONE)
    if isinstance(received := single_header(request, scheme.header), Reject):
        return received
    if not received.startswith(scheme.prefix):
        return Reject(Reason.MALFORMED_SIGNATURE, f"{scheme.header} does not start with {scheme.prefix!r}")
    signed: tuple[bytes, ...] = (request.body,)
    if scheme.timestamp_header is not None:
        if isinstance(timestamp := single_header(request, scheme.timestamp_header), Reject):
            return timestamp
        stale = check_timestamp(
            timestamp, header=scheme.timestamp_header, per_second=scheme.per_second, source=source, now=now
        )
        if stale is not None:
            return stale
        signed = (timestamp.encode("ascii"), b".", request.body)
    return check_hmac(
        source,
        received[len(scheme.prefix) :],
        signed,
        header=scheme.header,
        algorithm=scheme.algorithm,
        encoding=scheme.encoding,
    )


@per_source
def kept_headers(source: SourceConfig) -> frozenset[str]:
    """The signature headers, the required headers, and every header the ``mapping`` option reads."""
    names = {name.lower() for name in source.required_headers}
    scheme = _scheme(source)
    if scheme is not None:
        names.add(scheme.header.lower())
        if scheme.timestamp_header is not None:
            names.add(scheme.timestamp_header.lower())
    names.update(mapped_header_names(source))
    return frozenset(names)


def authenticates(source: SourceConfig) -> bool:
    """Only the ``signature`` option makes the verifier check anything."""
    return "signature" in source.options


VERIFIER = Verifier(verify=verify, kept_headers=kept_headers, check_options=check_options, authenticates=authenticates)
