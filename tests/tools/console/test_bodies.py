"""What the request page shows of a JSON document: indented, every number exact, embedded files described."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tools.console.bodies import indented_json, shown_json, view_body

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(JSON_VALUES)
def test_indenting_writes_what_orjson_indents(value: Any) -> None:
    assert indented_json(orjson.dumps(value)) == orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def test_numbers_no_float_holds_are_shown_exactly_as_sent() -> None:
    body = b'{"credit": 12345678901234567890123, "rate": 0.10000000000000000555, "tiny": 1e-400, "s": "{,:}\\""}'
    view = view_body(body, content_type="application/json", size=None, source="raw")
    assert view.kind == "json"
    assert view.text == (
        '{\n  "credit": 12345678901234567890123,\n  "rate": 0.10000000000000000555,\n  "tiny": 1E-400,\n'
        '  "s": "{,:}\\""\n}'
    )


def test_an_embedded_file_is_described_in_place_of_its_base64() -> None:
    pdf = base64.b64encode(b"%PDF-1.7 " + b"x" * 200).decode()
    shown, kind = shown_json(orjson.dumps({"data": {"certificate": pdf}}))
    assert kind == "PDF"
    assert shown == '{\n  "data": {\n    "certificate": "[PDF, 209 bytes, base64]"\n  }\n}'
