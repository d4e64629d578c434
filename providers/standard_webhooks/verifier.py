"""Standard Webhooks (spec v1): ``webhook-signature`` is a space-separated list of
``<version>,<signature>`` entries; a ``v1`` signature is the base64 HMAC-SHA256 of
``{webhook-id}.{webhook-timestamp}.{raw body}``, keyed by the bytes the secret encodes in
base64 after its ``whsec_`` prefix. ``webhook-timestamp`` is in Unix seconds.

- Any listed ``v1`` signature may match, under any of the source's secrets: during a key
  rotation the sender signs with the old and the new secret and lists both. Every listed
  signature is checked, and each against every secret (:func:`check_hmac`), whichever
  matched. Entries of other versions (``v1a`` is ed25519, for which a source holds no
  public key) are skipped, not errors; a header with no ``v1`` entry has no signature we
  can check. An entry without its comma makes the header malformed.
- At most :data:`MAX_SIGNATURES` ``v1`` entries are checked: each costs one HMAC of the
  whole body per secret, and the header is the client's to fill.
- ``webhook-id`` may not contain a dot: the specification asks senders for that, since only
  then does the signed content split back into id, timestamp and body one way only.
- Cheap checks come first: the three headers, then the timestamp (a replayed or badly
  clocked request is refused without hashing its body), then the signatures.
- Each secret must be ``whsec_`` followed by base64 (its padding may be left out, as the
  reference libraries allow); :func:`check_options` refuses any other at startup, naming
  ``secrets``. The secrets are decoded once per source, into the keys the shared HMAC
  check uses.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from hookbus.config import Secret, SourceConfig
from hookbus.errors import ConfigError
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict
from hookbus.verifying import (
    SIGNATURE_DECODERS,
    Verifier,
    as_bytes,
    check_hmac,
    check_timestamp,
    fixed_headers,
    per_source,
    single_header,
)

from .mapper import ID_HEADER, type_field

TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"
SIGNATURE_VERSION: Final = "v1"
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# A sender lists one signature per active secret: two during a rotation.
MAX_SIGNATURES: Final = 8
_BASE64_QUANTUM = 4


def signing_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_<base64>`` secret encodes; :class:`ValueError` for anything else."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"does not start with {SECRET_PREFIX}")
    encoded = secret[len(SECRET_PREFIX) :]
    key = SIGNATURE_DECODERS["base64"](encoded + "=" * (-len(encoded) % _BASE64_QUANTUM))
    if not key:
        raise ValueError(f"is empty after {SECRET_PREFIX}")
    return key


def check_options(source: SourceConfig) -> None:
    type_field(source)
    for position, secret in enumerate(source.secrets, start=1):
        try:
            signing_key(secret.value.decode("utf-8"))
        except ValueError as exc:
            # The message says where and what, never the secret itself.
            raise ConfigError(
                f"secret {position} must be {SECRET_PREFIX} followed by base64 (Standard Webhooks)", key="secrets"
            ) from exc


@per_source
def _keyed(source: SourceConfig) -> SourceConfig:
    """The source with each secret replaced by the key it encodes, which is what check_hmac keys with."""
    keys = tuple(Secret(signing_key(secret.value.decode("utf-8"))) for secret in source.secrets)
    return dataclasses.replace(source, secrets=keys)


def _v1_signatures(header: str) -> list[str] | Reject:
    signatures = []
    for entry in header.split():
        version, comma, signature = entry.partition(",")
        if not comma or not version:
            return Reject(Reason.MALFORMED_SIGNATURE, f"{SIGNATURE_HEADER} entries are <version>,<signature>")
        if version == SIGNATURE_VERSION:
            signatures.append(signature)
    if not signatures:
        return Reject(Reason.MISSING_SIGNATURE, f"{SIGNATURE_HEADER} lists no {SIGNATURE_VERSION} signature")
    if len(signatures) > MAX_SIGNATURES:
        return Reject(
            Reason.MALFORMED_SIGNATURE,
            f"{SIGNATURE_HEADER} lists {len(signatures)} {SIGNATURE_VERSION} signatures, more than {MAX_SIGNATURES}",
        )
    return signatures


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    if isinstance(message_id := single_header(request, ID_HEADER), Reject):
        return message_id
    if isinstance(timestamp := single_header(request, TIMESTAMP_HEADER), Reject):
        return timestamp
    if isinstance(header := single_header(request, SIGNATURE_HEADER), Reject):
        return header
    if not message_id:
        return Reject(Reason.MISSING_SIGNATURE, f"{ID_HEADER} is empty")
    if "." in message_id:
        return Reject(Reason.MALFORMED_SIGNATURE, f"{ID_HEADER} contains '.', which makes the signed content ambiguous")
    stale = check_timestamp(timestamp, header=TIMESTAMP_HEADER, per_second=1, source=source, now=now)
    if stale is not None:
        return stale
    if isinstance(signatures := _v1_signatures(header), Reject):
        return signatures
    signed = (as_bytes(message_id), b".", timestamp.encode("ascii"), b".", request.body)
    keyed = _keyed(source)
    # All of them, not up to the first match: the time taken does not depend on which one signed.
    verdicts = [
        check_hmac(keyed, signature, signed, header=SIGNATURE_HEADER, encoding="base64") for signature in signatures
    ]
    rejections = []
    for verdict in verdicts:
        if isinstance(verdict, Accept):
            return verdict
        rejections.append(verdict)
    # A signature that is not even base64 says more of the request than one that does not match.
    return next((item for item in rejections if item.reason is Reason.MALFORMED_SIGNATURE), rejections[0])


VERIFIER = Verifier(
    verify=verify,
    kept_headers=fixed_headers(ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER),
    check_options=check_options,
)
