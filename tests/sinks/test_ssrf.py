"""The destination guard: internal addresses are refused, whether literal or resolved."""

from __future__ import annotations

import ipaddress

import pytest

from hookbus.errors import ConfigError
from sinks.configure import configure_sink
from sinks.ssrf import DestinationRefusedError, GuardedResolver, refusal
from tests.sinks.helpers import config_with

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address the guard must refuse, not a bind
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


async def test_a_name_resolving_to_loopback_is_refused_at_resolution() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(DestinationRefusedError, match=r"localhost resolves to .*loopback"):
            await resolver.resolve("localhost", 443)
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::1]", "10.0.0.7", "169.254.169.254", "[fd00::1]", "[::ffff:127.0.0.1]"]
)
def test_an_internal_literal_destination_fails_at_startup_unless_allowed(host: str) -> None:
    section = {"type": "http", "url": f"http://{host}:8080/hooks", "secret": SECRET}
    with pytest.raises(ConfigError) as caught:
        configure_sink(config_with({"hook": section}), "hook")
    assert caught.value.key == "sinks.hook.url"
    allowed = configure_sink(config_with({"hook": {**section, "allow_private_destinations": True}}), "hook")
    assert allowed.settings.allow_private_destinations
