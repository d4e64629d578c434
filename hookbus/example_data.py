"""Ids, times and signatures as providers write them: the pieces providers' examples share.

Each provider's ``examples`` module builds realistic events from its own documentation;
these helpers keep the ids random (every example is a distinct event) and the formats
exactly as the providers send them. The signing helper is written from the documentation,
independently of the verifiers, so a signed example the gateway accepts checks both.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from hookbus.errors import ConfigError
from hookbus.provider import Credentials

__all__ = [
    "hmac_hex",
    "iso_date",
    "iso_millis",
    "iso_seconds",
    "object_id",
    "require_api_key",
    "require_secret",
    "short_id",
    "small_number",
]


def object_id() -> str:
    """A MongoDB ObjectId-like id (24 hex digits), as October and OfficeRnD use."""
    return secrets.token_hex(12)


def short_id(length: int = 16) -> str:
    """A short alphanumeric id, as Offerte Adviseur gives its events."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def small_number(low: int, high: int) -> int:
    return low + secrets.randbelow(high - low)


def iso_millis(moment: datetime) -> str:
    """``2020-10-19T10:38:15.127Z``: JavaScript's ``Date.toISOString()``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def hmac_hex(secret: bytes, *parts: bytes) -> str:
    """The hex HMAC-SHA256 of the concatenated ``parts``."""
    return hmac.new(secret, b"".join(parts), hashlib.sha256).hexdigest()


def require_secret(provider: str, credentials: Credentials) -> bytes:
    """The signing secret; :class:`~hookbus.errors.ConfigError` saying how to give one otherwise."""
    if credentials.secret is None:
        raise ConfigError(f"{provider} signs its requests: give --secret (or run `hookbus dev` first)")
    return credentials.secret


def require_api_key(provider: str, credentials: Credentials) -> str:
    """The API key; :class:`~hookbus.errors.ConfigError` saying how to give one otherwise."""
    if credentials.api_key is None:
        raise ConfigError(f"{provider} authenticates with an API key: give --api-key (or run `hookbus dev` first)")
    return credentials.api_key
