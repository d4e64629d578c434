"""The raw key's scanner: it finds what a full parse finds, steps over what it is not asked
for whatever its size, and gives up (``None``) rather than guess."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookbus.config import SourceConfig
from hookbus.mapping import JsonObject, require_text
from hookbus.rawkey import MAX_MEMBER_BYTES, MAX_SCAN_TOKENS, WHOLE_PARSE_MAX_BYTES, member_key, top_level_members

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
NAMES = ("id", 'a"b\\', "")
# Trailing whitespace leaves the document as it is but makes it large enough to be scanned
# rather than parsed whole: every case holds for both ways of reading.
READ_WHOLE, READ_BY_SCAN = b"", b" " * WHOLE_PARSE_MAX_BYTES
BOTH_WAYS = pytest.mark.parametrize("padding", [READ_WHOLE, READ_BY_SCAN], ids=["parsed", "scanned"])


@BOTH_WAYS
@given(document=st.dictionaries(st.sampled_from([*NAMES, "other", "x"]) | st.text(max_size=6), JSON_VALUES))
def test_members_are_what_a_full_parse_gives(padding: bytes, document: dict[str, Any]) -> None:
    expected = {name: document[name] for name in NAMES if name in document}
    assert top_level_members(json.dumps(document, ensure_ascii=False).encode("utf-8") + padding, NAMES) == expected
    # Pretty-printed and escaped, it is the same document.
    assert top_level_members(json.dumps(document, indent=2).encode("utf-8") + padding, NAMES) == expected


@BOTH_WAYS
def test_a_name_sent_twice_gives_its_last_value_as_a_full_parse_does(padding: bytes) -> None:
    body = b'{"id": "first", "id": "last"}'
    assert top_level_members(body + padding, ["id"]) == {"id": orjson.loads(body)["id"]} == {"id": "last"}


@BOTH_WAYS
def test_escaped_quotes_and_backslashes_do_not_end_a_string_early(padding: bytes) -> None:
    body = rb'{"note": "say \"id\": \"no\" \\", "id": "yes", "tail": "\\\""}'
    assert top_level_members(body + padding, ["id"]) == {"id": "yes"}


def test_a_large_member_not_asked_for_is_stepped_over() -> None:
    certificate = base64.b64encode(bytes(range(256)) * 16_384).decode("ascii")
    body = orjson.dumps({"crtfct": certificate, "nested": [{"a": [1, {"b": "]}"}]}], "trnsctnId": "t-1"})
    assert len(body) > 4 * MAX_MEMBER_BYTES
    assert top_level_members(body, ["trnsctnId"]) == {"trnsctnId": "t-1"}


def test_a_member_asked_for_beyond_its_bound_gives_up() -> None:
    body = orjson.dumps({"id": "x" * MAX_MEMBER_BYTES})
    assert top_level_members(body, ["id"]) is None


@BOTH_WAYS
def test_nesting_beyond_the_token_bound_gives_up(padding: bytes) -> None:
    # Larger than a body parsed whole, so it is scanned either way.
    body = b'{"deep": ' + b"[" * MAX_SCAN_TOKENS + b"]" * MAX_SCAN_TOKENS + b', "id": "x"}'
    assert top_level_members(body + padding, ["id"]) is None


@BOTH_WAYS
def test_what_is_not_a_json_object_gives_up(padding: bytes) -> None:
    for body in (b"", b"[]", b'"id"', b"id=1", b'{"id": "x"', b'{"id" "x"}', b'{"id": }', b'{"id": "x" "y"}'):
        assert top_level_members(body + padding, ["id"]) is None, body


@BOTH_WAYS
def test_an_empty_object_has_no_members(padding: bytes) -> None:
    assert top_level_members(b" { } " + padding, ["id"]) == {}


def _entity(members: JsonObject) -> str:
    return f"thing:{require_text(members, 'id')}"


def test_member_key_gives_the_entity_or_none_when_the_members_do_not_name_one() -> None:
    read = member_key(["id"], _entity)(SourceConfig(name="s", provider="generic"))
    assert read(b'{"id": "7"}', {}) == "thing:7"
    assert read(b'{"id": 7}', {}) is None
    assert read(b'{"other": "7"}', {}) is None
    assert read(b"not json", {}) is None
