"""A configurable source, in the manner of Octolis inbound webhooks: API key, allowed
methods, required headers and IP allowlist (all judged by the gateway before this verifier),
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

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, check_timestamp, per_source, single_header

from .options import SignatureOptions, options_of


def _scheme(source: SourceConfig) -> SignatureOptions | None:
    return options_of(source).signature


def check_options(source: SourceConfig) -> None:
    # The mapping belongs to the mapper, but it is checked here too: the gateway keeps the
    # headers it names.
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
    """The signature headers and every header the ``mapping`` option reads. Not the required
    headers: their values are judged by the gateway and never kept."""
    names: set[str] = set()
    scheme = _scheme(source)
    if scheme is not None:
        names.add(scheme.header.lower())
        if scheme.timestamp_header is not None:
            names.add(scheme.timestamp_header.lower())
    mapping = options_of(source).mapping
    if mapping is not None:
        names.update(mapping.header_names())
    return frozenset(names)


def authenticates(source: SourceConfig) -> bool:
    """Only the ``signature`` option makes the verifier check anything."""
    return _scheme(source) is not None


VERIFIER = Verifier(verify=verify, kept_headers=kept_headers, check_options=check_options, authenticates=authenticates)
