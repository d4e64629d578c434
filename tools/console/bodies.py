"""A request's body as the request page shows it: pretty-printed JSON, text, or the file
type and size of a binary one, never more than :data:`MAX_SHOWN_CHARS` of it.

A file sent inside JSON as a long base64 string (Octamile's insurance certificate, a PDF or
an image) is shown as what it is, ``[PDF, 48213 bytes, base64]``, in place of the string:
a page of base64 tells a person nothing, and its type and size are what they ask about.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from hookbus.cloudevent import CloudEventError, decode_json, encode_json

__all__ = ["MAX_SHOWN_CHARS", "BodyView", "file_type", "indented_json", "shown_json", "view_body"]

MAX_SHOWN_CHARS: Final = 256 * 1024
MIN_EMBEDDED_FILE_CHARS: Final = 64
"""A JSON string at least this long that decodes from base64 to a known file type is shown as that file."""

_MAGIC: Final[Sequence[tuple[bytes, str]]] = (
    (b"%PDF-", "PDF"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"-----BEGIN CERTIFICATE-----", "PEM certificate"),
    (b"-----BEGIN ", "PEM data"),
    # An X.509 certificate in DER is an ASN.1 SEQUENCE with a two-byte length.
    (b"\x30\x82", "DER certificate"),
)


@dataclass(frozen=True, slots=True)
class BodyView:
    kind: str
    """``json``, ``text``, ``binary`` or ``none``."""
    text: str | None
    size: int | None
    content_type: str | None
    file_type: str | None
    truncated: bool
    source: str | None
    """``raw`` (the raw record), ``refused_prefix`` (what the request log kept of a refused body) or ``None``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NO_BODY: Final = BodyView("none", None, None, None, None, False, None)


def file_type(data: bytes) -> str | None:
    """What the bytes are, by their first bytes, or ``None``."""
    stripped = data.lstrip()
    return next((name for magic, name in _MAGIC if stripped.startswith(magic)), None)


def view_body(data: bytes, *, content_type: str | None, size: int | None, source: str, cut: bool = False) -> BodyView:
    """``data`` (the whole body, or with ``cut`` its first bytes) as the page shows it; ``size`` its full length."""
    full_size = size if size is not None else len(data)
    if not data:
        return BodyView("none", None, full_size, content_type, None, cut, source)
    kind = file_type(data)
    if kind is not None and not kind.startswith("PEM"):
        return BodyView("binary", None, full_size, content_type, kind, cut, source)
    if not cut:
        try:
            # Exactly: a JavaScript or float reader would show 12345678901234567890 as ...7000.
            shown, embedded = shown_json(data)
        except CloudEventError:
            pass
        else:
            return _clipped(
                "json", shown, size=full_size, content_type=content_type, kind_of_file=embedded, source=source, cut=cut
            )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return BodyView("binary", None, full_size, content_type, kind, cut, source)
    if "\x00" in text:
        return BodyView("binary", None, full_size, content_type, kind, cut, source)
    return _clipped("text", text, size=full_size, content_type=content_type, kind_of_file=kind, source=source, cut=cut)


# A JSON text's tokens: a whole string, an empty container, one structural character, or a
# run of anything else (a number, true, false, null).
_JSON_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|\{\}|\[\]|[{}\[\],:]|[^"{}\[\],:]+')


def indented_json(compact: bytes) -> str:
    """Compact JSON (as :func:`~hookbus.cloudevent.encode_json` writes it) indented by two
    spaces per level. The text is re-indented, never parsed again, so every number stays
    exactly as written, however long."""
    out: list[str] = []
    depth = 0
    for match in _JSON_TOKEN.finditer(compact.decode("utf-8")):
        piece = match.group()
        if piece in ("{", "["):
            depth += 1
            out.append(piece + "\n" + "  " * depth)
        elif piece in ("}", "]"):
            depth -= 1
            out.append("\n" + "  " * depth + piece)
        elif piece == ",":
            out.append(",\n" + "  " * depth)
        elif piece == ":":
            out.append(": ")
        else:
            out.append(piece)
    return "".join(out)


def shown_json(data: bytes) -> tuple[str, str | None]:
    """``data`` as the page shows a JSON document: exact, indented, an embedded file described
    in place of its base64; and the first such file's type. :class:`CloudEventError` when
    ``data`` is not JSON."""
    embedded: list[str] = []
    shown = indented_json(encode_json(_with_files_described(decode_json(data), embedded)))
    return shown, embedded[0] if embedded else None


def _clipped(
    kind: str, text: str, *, size: int, content_type: str | None, kind_of_file: str | None, source: str, cut: bool
) -> BodyView:
    truncated = cut or len(text) > MAX_SHOWN_CHARS
    return BodyView(kind, text[:MAX_SHOWN_CHARS], size, content_type, kind_of_file, truncated, source)


def _with_files_described(value: Any, found: list[str]) -> Any:
    if isinstance(value, dict):
        return {name: _with_files_described(item, found) for name, item in value.items()}
    if isinstance(value, list):
        return [_with_files_described(item, found) for item in value]
    if isinstance(value, str) and len(value) >= MIN_EMBEDDED_FILE_CHARS:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        kind = file_type(decoded)
        if kind is not None:
            found.append(kind)
            return f"[{kind}, {len(decoded)} bytes, base64]"
    return value
