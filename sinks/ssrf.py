"""The destination guard: the HTTP sink posts only to public addresses unless told otherwise.

A destination is refused when it is private, loopback, link-local, unique-local, multicast,
unspecified or reserved, in IPv4 or IPv6, including IPv4 addresses carried inside IPv6
(``::ffff:127.0.0.1``, 6to4, Teredo). Names are checked after they are resolved, by the
resolver the HTTP client connects with, so a DNS answer that changes between a check and
the connection (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hookbus.sink import SinkError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefusedError(SinkError, OSError):
    """The destination resolves to an address the guard refuses. Retrying will not change that.

    An ``OSError`` too, so the HTTP client reports it as a connection failure.
    """

    reason = "destination_refused"

    def __init__(self, detail: str) -> None:
        SinkError.__init__(self, detail)


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is refused, or ``None`` when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return refusal(embedded)
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        # Shared address space (100.64.0.0/10), documentation and benchmarking ranges and the like.
        return "non-global"
    return None


def check_address(text: str, *, host: str | None = None) -> IPAddress:
    """Parse ``text`` and refuse it with :class:`DestinationRefusedError` if it is not public."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    why = refusal(address)
    if why is not None:
        named = f"{host} resolves to " if host is not None and host != text else ""
        raise DestinationRefusedError(f"{named}{address}, a {why} address: set allow_private_destinations to allow it")
    return address


def literal_address(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal (bracketed or not), else ``None``."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """Resolves names as usual, then refuses the whole answer if any address in it is not public.

    The client connects to exactly the addresses returned here, so what was checked is what is used.
    """

    def __init__(self, resolver: AbstractResolver | None = None) -> None:
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        for result in results:
            check_address(result["host"], host=host)
        return results

    async def close(self) -> None:
        await self._resolver.close()

    def __repr__(self) -> str:
        return f"GuardedResolver({self._resolver!r})"
