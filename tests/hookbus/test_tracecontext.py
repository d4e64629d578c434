"""The trace context a webhook arrives with: kept when it follows W3C Trace Context, dropped when not."""

from __future__ import annotations

import pytest

from hookbus.tracecontext import trace_context

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_and_tracestate_are_kept() -> None:
    headers = {"traceparent": VALID, "tracestate": "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"}
    assert trace_context(headers) == headers


def test_a_later_version_may_carry_more_fields() -> None:
    later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-more"
    assert trace_context({"traceparent": later}) == {"traceparent": later}


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # uppercase hex
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # the forbidden version
        f"{VALID}-extra",  # version 00 has exactly four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\udcff",  # a byte that is not UTF-8
    ],
)
def test_a_malformed_traceparent_drops_the_whole_context(traceparent: str) -> None:
    assert trace_context({"traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE"}) == {}


def test_a_tracestate_alone_means_nothing() -> None:
    assert trace_context({"tracestate": "congo=t61rcWkgMzE"}) == {}


@pytest.mark.parametrize(
    "tracestate",
    ["Congo=x", "congo", "congo=x,=y", "congo=a=b", "k=" + "v" * 600, ",".join(f"k{n}=v" for n in range(33))],
)
def test_a_malformed_tracestate_is_dropped_and_the_traceparent_kept(tracestate: str) -> None:
    assert trace_context({"traceparent": VALID, "tracestate": tracestate}) == {"traceparent": VALID}


def test_surrounding_whitespace_is_not_part_of_the_value() -> None:
    assert trace_context({"traceparent": f" {VALID}\t"}) == {"traceparent": VALID}
