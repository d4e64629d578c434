"""Octamile's example events: an approval carries a real (small) PDF certificate. Octamile
signs nothing; the source's API key travels as the ``api-key`` query parameter."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from hookbus.example_data import iso_date, require_api_key
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

API_KEY_PARAMETER = "api-key"


def certificate_pdf(transaction_id: str, now: datetime) -> bytes:
    """A small, valid one-page PDF: the insurance certificate an approval carries."""
    text = f"Certificate of insurance - transaction {transaction_id} - issued {iso_date(now)}"
    content = f"BT /F1 11 Tf 56 780 Td ({text}) Tj ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    document = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(document))
        document += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(document)


def body(event_type: str, now: datetime) -> JsonObject:
    transaction_id = secrets.token_hex(16)
    body: JsonObject = {"product": "vhcl-tprt-1111", "consumerId": secrets.token_hex(16), "trnsctnId": transaction_id}
    if event_type == "approved":
        certificate = base64.b64encode(certificate_pdf(transaction_id, now)).decode("ascii")
        body.update(status="a", statusNote="", crtfct=certificate, crtfctType="pdf")
    else:
        body.update(status="d", statusNote="Chassis number does not match registration")
    return body


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    api_key = require_api_key("octamile", credentials)
    return SignedRequest({"Content-Type": "application/json"}, {API_KEY_PARAMETER: api_key})


EXAMPLES = Examples(
    event_types=("approved", "declined"),
    body=body,
    sign=sign,
    source={"api_key": "${API_KEY}"},
)
