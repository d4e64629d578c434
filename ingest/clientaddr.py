"""The client address that IP allowlists judge.

Behind a reverse proxy the socket peer is the proxy, and the client is named in
``X-Forwarded-For``. That header is written by whoever sent the request, so it is believed
only as far as it was written by proxies we trust: walking it from the right, each address
was appended by the hop after it, and the first one that is not a trusted proxy is the
client. Anything else in the header cannot be trusted and is never looked at.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hookbus.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress | None:
    """An IP address, with IPv4-mapped IPv6 (``::ffff:192.0.2.1``) read as the IPv4 address
    it carries, so one allowlist entry covers both ways a dual-stack socket reports a peer.
    ``None`` when ``text`` is not an address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def in_networks(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """Whether ``address`` is in any of ``networks`` (an IPv4 address is never in an IPv6 network)."""
    return any(address in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]) -> str:
    """The address of the client, as text.

    ``peer`` is the socket peer (``None`` or ``""`` when the transport has none, such as a
    Unix socket); ``forwarded_for`` is the ``X-Forwarded-For`` value, several such headers
    joined with ``,`` in the order received. The peer is returned unless it is a trusted
    proxy; then the right-most forwarded address that is not itself a trusted proxy (or the
    left-most, when all are). An entry that is not an address (garbage, or a forged header
    mangled on the way) makes the whole header untrustworthy: the peer is returned. Entries
    may carry a port (``192.0.2.1:443``, ``[2001:db8::1]:443``), as some proxies write them.
    """
    if not peer:
        return ""
    peer_address = parse_address(peer)
    if peer_address is None:
        return peer
    if not forwarded_for or not in_networks(peer_address, trusted_proxies):
        return str(peer_address)
    client = peer_address
    for item in reversed(forwarded_for.split(",")):
        forwarded = _parse_forwarded(item.strip())
        if forwarded is None:
            return str(peer_address)
        client = forwarded
        if not in_networks(forwarded, trusted_proxies):
            break
    return str(client)


def _parse_forwarded(item: str) -> IPAddress | None:
    if item.startswith("["):
        host, bracket, port = item[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and _is_port(port[1:]))):
            return None
        return parse_address(host)
    if item.count(":") == 1:
        host, _, port = item.partition(":")
        return parse_address(host) if _is_port(port) else None
    return parse_address(item)


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit()
