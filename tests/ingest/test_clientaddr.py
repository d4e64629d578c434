"""Which address the IP allowlist judges: the peer, or X-Forwarded-For as far as trusted proxies wrote it."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.clientaddr import client_address, parse_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),
        ("10.0.0.2", None, "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "192.0.2.66, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "192.0.2.66, 198.51.100.7, 10.1.2.3", "198.51.100.7"),
        ("10.0.0.2", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
        ("10.0.0.2", "garbage, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7, garbage", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7,,10.1.2.3", "10.0.0.2"),
        ("10.0.0.2", "unknown", "10.0.0.2"),
        ("10.0.0.2", "198.51.100.7:4711", "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7:port", "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::7]:443", "2001:db8::7"),
        ("10.0.0.2", "[2001:db8::7]", "2001:db8::7"),
        ("10.0.0.2", "[2001:db8::7", "10.0.0.2"),
        ("10.0.0.2", "[2001:db8::7]x", "10.0.0.2"),
        ("10.0.0.2", "2001:DB8::7", "2001:db8::7"),
        ("fd00::2", "198.51.100.7", "198.51.100.7"),
        ("fd00::2", "2001:db8::7, fd12::1", "2001:db8::7"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "::ffff:198.51.100.7", "198.51.100.7"),
        ("::ffff:203.0.113.9", "198.51.100.7", "203.0.113.9"),
        ("10.0.0.2", "198.51.100.7, ::ffff:10.1.2.3", "198.51.100.7"),
        ("2001:0db8:0000::0009", None, "2001:db8::9"),
        ("", "198.51.100.7", ""),
        (None, "198.51.100.7", ""),
        ("/run/hookbus.sock", "198.51.100.7", "/run/hookbus.sock"),
    ],
    ids=repr,
)
def test_client_address(peer: str | None, forwarded_for: str | None, expected: str) -> None:
    assert client_address(peer, forwarded_for, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_never_believed() -> None:
    assert client_address("10.0.0.2", "198.51.100.7", ()) == "10.0.0.2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("198.51.100.256", None),
        (" 198.51.100.7", None),
        ("", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


@given(
    peer=st.none() | st.ip_addresses().map(str) | st.text(),
    forwarded_for=st.none() | st.lists(st.ip_addresses().map(str) | st.text(), max_size=5).map(", ".join),
)
def test_never_raises_and_answers_the_peer_or_a_forwarded_address(peer: str | None, forwarded_for: str | None) -> None:
    trusted = (*PROXIES, ipaddress.ip_network("0.0.0.0/1"))
    answer = client_address(peer, forwarded_for, trusted)
    candidates = {"", peer, str(parse_address(peer or ""))}
    for item in (forwarded_for or "").split(","):
        candidates.add(str(parse_address(item.strip())))
    assert answer in candidates
