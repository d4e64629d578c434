"""A generic source's raw key is what its ``mapping.partition_key`` names, read as the mapper
reads it: from a header, or from a JSON body by pointer; a body the gateway would have to
parse otherwise (a form) is keyed by its source, and so is a source without the mapping."""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDict

from hookbus.config import SourceConfig, parse_source
from normalizer.normalizer import Normalizer
from providers.generic.mapper import raw_key
from tests.providers.mapping_support import raw_event


def crm(**mapping: Any) -> SourceConfig:
    options: dict[str, Any] = {"api_key": "crm-key-5f2a", **({"mapping": mapping} if mapping else {})}
    return parse_source(options, name="crm", provider="generic")


def test_a_header_names_the_entity_whatever_its_case() -> None:
    read = raw_key(crm(partition_key="header:X-Customer"))
    assert read(b"not even json", CIMultiDict({"X-CUSTOMER": "c-7"})) == "crm:c-7"
    assert read(b"{}", CIMultiDict()) is None


def test_a_pointer_reads_the_body_as_the_mapper_does() -> None:
    source = crm(partition_key="/customer/id")
    body = b'{"note": "x", "customer": {"id": 42, "name": "Ada"}}'
    key = raw_key(source)(body, CIMultiDict({"Content-Type": "application/json"}))
    normalizer = Normalizer({source.name: source})
    assert key == normalizer.normalize(raw_event(source, body)).partition_key == "crm:42"


def test_a_form_body_and_a_source_without_the_mapping_are_keyed_by_the_source() -> None:
    source = crm(partition_key="/customer")
    form = CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"})
    assert raw_key(source)(b"customer=c-1", form) is None
    plain = raw_key(crm())
    assert plain(b'{"customer": "c-1"}', CIMultiDict()) is None
