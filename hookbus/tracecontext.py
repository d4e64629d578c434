"""W3C Trace Context: the ``traceparent`` and ``tracestate`` a webhook arrives with, carried onward.

A sender (or a proxy in front of the gateway) may start a trace; the gateway keeps both
headers in the raw event whatever the source's configuration, the normalizer copies them
into the CloudEvent as the CloudEvents distributed-tracing extension's attributes, and
sinks that speak HTTP send them on as the same headers. A value that does not follow the
specification is dropped, not repaired: a malformed trace id would join unrelated traces.
See https://www.w3.org/TR/trace-context/ and the CloudEvents "Distributed Tracing" extension.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = ["TRACEPARENT", "TRACESTATE", "TRACE_HEADERS", "trace_context"]

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
TRACE_HEADERS: Final = frozenset({TRACEPARENT, TRACESTATE})

# version-traceid-parentid-flags; a later version may append fields after another dash.
_TRACEPARENT = re.compile(
    r"(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-[0-9a-f]{2}(?P<rest>-.*)?"
)
_INVALID_VERSION = "ff"
_ZERO_TRACE = "0" * 32
_ZERO_PARENT = "0" * 16
# A list member: key=value, the key lowercase (optionally tenant@system), the value printable ASCII
# without ',' and '=' and not ending in a space.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}|[a-z][a-z0-9_\-*/]{0,255})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
_MAX_TRACESTATE_MEMBERS = 32
_MAX_TRACESTATE_LENGTH = 512


def _valid_traceparent(value: str) -> bool:
    match = _TRACEPARENT.fullmatch(value)
    if match is None or match["version"] == _INVALID_VERSION:
        return False
    if match["version"] == "00" and match["rest"] is not None:
        return False
    return match["trace"] != _ZERO_TRACE and match["parent"] != _ZERO_PARENT


def _valid_tracestate(value: str) -> bool:
    if len(value) > _MAX_TRACESTATE_LENGTH:
        return False
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    return 0 < len(members) <= _MAX_TRACESTATE_MEMBERS and all(
        _TRACESTATE_MEMBER.fullmatch(member) for member in members
    )


def trace_context(headers: Mapping[str, str]) -> dict[str, str]:
    """The valid trace context in ``headers`` (lowercase names): ``traceparent``, and ``tracestate``
    beside it; empty when there is no valid ``traceparent`` (a ``tracestate`` alone means nothing)."""
    parent = headers.get(TRACEPARENT, "").strip(" \t")
    if not _valid_traceparent(parent):
        return {}
    context = {TRACEPARENT: parent}
    state = headers.get(TRACESTATE, "").strip(" \t")
    if state and _valid_tracestate(state):
        context[TRACESTATE] = state
    return context
