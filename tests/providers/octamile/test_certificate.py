"""Octamile's certificate: checked, described in data, never a reason to drop the event."""

from __future__ import annotations

import base64
import hashlib
import os

import orjson
import pytest

from hookbus.config import SourceConfig
from normalizer.normalizer import Normalizer
from providers.octamile.certificate import MAX_CERTIFICATE_BYTES, check_certificate
from tests.providers.mapping_support import raw_event

OCTAMILE = SourceConfig(name="octamile", provider="octamile")
NORMALIZER = Normalizer({OCTAMILE.name: OCTAMILE})
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(40))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(40))
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"


def _approval(certificate: str | None, declared: str | None = "pdf", status: str = "a") -> bytes:
    body: dict[str, object] = {"product": "vhcl-tprt-1111", "trnsctnId": "t-1", "status": status, "statusNote": ""}
    if certificate is not None:
        body["crtfct"] = certificate
    if declared is not None:
        body["crtfctType"] = declared
    return orjson.dumps(body)


def _certificate(body: bytes) -> dict[str, object]:
    data = NORMALIZER.normalize(raw_event(OCTAMILE, body)).data
    certificate: dict[str, object] = data["certificate"]
    return certificate


@pytest.mark.parametrize(
    ("content", "declared", "media_type"),
    [
        (JPEG, "jpg", "image/jpeg"),
        (JPEG, "JPEG", "image/jpeg"),
        (PNG, "png", "image/png"),
        (PDF, "pdf", "application/pdf"),
    ],
)
def test_a_valid_certificate_is_described(content: bytes, declared: str, media_type: str) -> None:
    certificate = _certificate(_approval(base64.b64encode(content).decode(), declared))
    assert certificate == {
        "valid": True,
        "problem": None,
        "declared_type": declared,
        "media_type": media_type,
        "detected_media_type": media_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def test_line_wrapped_base64_is_the_same_certificate() -> None:
    encoded = base64.encodebytes(PDF * 4).decode()
    assert "\n" in encoded
    certificate = _certificate(_approval(encoded))
    assert (certificate["valid"], certificate["size"]) == (True, len(PDF) * 4)


@pytest.mark.parametrize(
    ("certificate", "declared", "problem"),
    [
        (base64.b64encode(PNG).decode(), "pdf", "type_mismatch"),
        (base64.b64encode(b"GIF89a....").decode(), "jpg", "type_mismatch"),
        (base64.b64encode(PDF).decode(), "gif", "unknown_type"),
        (base64.b64encode(PDF).decode(), None, "unknown_type"),
        ("not base64!", "pdf", "not_base64"),
        ("JVBERi0", "pdf", "not_base64"),
        ("=", "pdf", "not_base64"),
        (None, "pdf", "missing"),
    ],
)
def test_a_bad_certificate_is_flagged_and_the_approval_still_flows(
    certificate: str | None, declared: str | None, problem: str
) -> None:
    body = _approval(certificate, declared)
    event = NORMALIZER.normalize(raw_event(OCTAMILE, body))
    assert event.type == "octamile.policy.approved"
    assert (event.data["certificate"]["valid"], event.data["certificate"]["problem"]) == (False, problem)
    assert event.data["object"] == orjson.loads(body)


def test_a_certificate_that_is_not_a_string_is_not_base64() -> None:
    body = orjson.dumps({"trnsctnId": "t-1", "status": "a", "crtfct": {"b64": "x"}, "crtfctType": "pdf"})
    assert _certificate(body)["problem"] == "not_base64"


def test_a_decline_without_certificate_has_none() -> None:
    event = NORMALIZER.normalize(raw_event(OCTAMILE, _approval(None, None, status="d")))
    assert (event.type, event.data["certificate"]) == ("octamile.policy.declined", None)


def test_empty_and_oversized_certificates() -> None:
    assert check_certificate("", "pdf", required=False) is None
    empty = check_certificate("====", "pdf", required=True)
    assert empty is not None
    assert empty.problem in {"not_base64", "empty"}
    oversized = check_certificate(base64.b64encode(PDF + bytes(MAX_CERTIFICATE_BYTES)).decode(), "pdf", required=True)
    assert oversized is not None
    assert (oversized.valid, oversized.problem) == (False, "too_large")


def test_a_several_megabyte_pdf_certificate_flows_through_inline() -> None:
    content = PDF + os.urandom(6 * 1024 * 1024)
    encoded = base64.b64encode(content).decode()
    body = _approval(encoded)
    event = NORMALIZER.normalize(raw_event(OCTAMILE, body))
    assert event.data["object"]["crtfct"] == encoded
    assert event.data["certificate"]["valid"] is True
    assert event.data["certificate"]["size"] == len(content)
    assert event.data["certificate"]["sha256"] == hashlib.sha256(content).hexdigest()
    # The event survives the JSON round trip the events topic puts it through.
    assert orjson.loads(event.to_json())["data"]["object"]["crtfct"] == encoded
