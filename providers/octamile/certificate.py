"""Checks of the insurance certificate Octamile sends, base64-encoded, with an approval.

A bad certificate never stops the event: the approval is a fact the consumer must learn
of even when its certificate is broken. The result of the checks travels in the event's
data (``data.certificate``) so the consumer decides; the certificate itself stays in the
event as received.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, Final

# A certificate is a one-page PDF or a scan; far more than this is not a certificate.
MAX_CERTIFICATE_BYTES: Final = 25 * 1024 * 1024

# What Octamile's crtfctType says, and the media type it stands for.
DECLARED_MEDIA_TYPES: Final[dict[str, str]] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "pdf": "application/pdf",
}
# The first bytes ("magic numbers") of each media type.
MAGIC_NUMBERS: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
)


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    """The outcome of the checks; ``problem`` is ``None`` exactly when ``valid``.

    ``problem`` is one of ``missing`` (an approval without a certificate), ``not_base64``,
    ``empty``, ``too_large``, ``unknown_type`` (crtfctType is not jpg, png or pdf) and
    ``type_mismatch`` (the bytes are not of the declared type).
    """

    valid: bool
    problem: str | None
    declared_type: str | None = None
    media_type: str | None = None
    """The media type crtfctType declares."""
    detected_media_type: str | None = None
    """The media type the decoded bytes' magic numbers show; ``None`` when none matches."""
    size: int | None = None
    """Decoded size in bytes."""
    sha256: str | None = None
    """Hex SHA-256 of the decoded bytes."""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


def detect_media_type(content: bytes) -> str | None:
    for magic, media_type in MAGIC_NUMBERS:
        if content.startswith(magic):
            return media_type
    return None


def _decode(encoded: str) -> bytes | None:
    # Line-wrapped (MIME) base64 is still the same bytes; any other stray character is not.
    if "\n" in encoded or "\r" in encoded:
        encoded = encoded.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def check_certificate(encoded: Any, declared_type: Any, *, required: bool) -> CertificateCheck | None:
    """Check a certificate as sent; ``None`` when there is none and none was due."""
    declared = declared_type if isinstance(declared_type, str) else None
    media_type = DECLARED_MEDIA_TYPES.get(declared.lower()) if declared is not None else None
    if encoded is None or encoded == "":
        if not required:
            return None
        return CertificateCheck(False, "missing", declared, media_type)
    content = _decode(encoded) if isinstance(encoded, str) else None
    if content is None:
        return CertificateCheck(False, "not_base64", declared, media_type)
    detected = detect_media_type(content)
    problem: str | None = None
    if not content:
        problem = "empty"
    elif len(content) > MAX_CERTIFICATE_BYTES:
        problem = "too_large"
    elif media_type is None:
        problem = "unknown_type"
    elif detected != media_type:
        problem = "type_mismatch"
    return CertificateCheck(
        valid=problem is None,
        problem=problem,
        declared_type=declared,
        media_type=media_type,
        detected_media_type=detected,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
