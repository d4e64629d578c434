"""Installed, the package is a provider like hookbus's own: the registry finds it, sources
name it, and its examples are what the gateway accepts and the normalizer maps."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from hookbus_gitea import PROVIDER

import providers as built_in
from hookbus.config import parse_source
from hookbus.errors import ConfigError
from hookbus.provider import Credentials, provider, providers
from hookbus.rawevent import RawEvent
from hookbus.request import Accept, RawRequest
from ingest.decision import decide, kept_headers
from normalizer.normalizer import Normalizer
from schemas import cloudevent_schema, data_schema, data_schema_id

KEY = b"gitea-example-key"


def test_the_registry_finds_it_once_installed() -> None:
    assert providers()["gitea"] is PROVIDER
    assert provider("gitea") is PROVIDER
    # A third-party provider, not one of hookbus's own.
    assert PROVIDER not in built_in.BUILT_IN


def test_its_schema_ships_in_the_package_and_its_id_is_a_dataschema() -> None:
    assert data_schema("gitea")["$id"] == data_schema_id("gitea")
    pattern = cloudevent_schema()["properties"]["dataschema"]["pattern"]
    assert re.fullmatch(pattern, data_schema_id("gitea"))


@pytest.mark.parametrize("event_type", PROVIDER.examples.event_types)
def test_every_example_is_accepted_and_maps_to_its_type(event_type: str) -> None:
    source = parse_source({"secrets": [KEY.decode()]}, name="gitea", provider="gitea")
    now = time.time()
    body = orjson.dumps(PROVIDER.examples.body(event_type, datetime.fromtimestamp(now, tz=UTC)))
    signed = PROVIDER.examples.sign(body, event_type, Credentials(secret=KEY), now)
    request = RawRequest.build(method="POST", body=body, client_addr="127.0.0.1", headers=signed.headers)
    verdict = decide(source, request, now)
    assert isinstance(verdict, Accept)
    kept = kept_headers(source)
    raw = RawEvent(
        source=source.name,
        provider="gitea",
        ingest_id=uuid.uuid4().hex,
        received_at=now,
        body=body,
        content_type="application/json",
        auth=verdict.auth,
        headers={name.lower(): value for name, value in signed.headers.items() if name.lower() in kept},
    )
    event = Normalizer({source.name: source}).normalize(raw)
    assert event.type == PROVIDER.mapper.known_types[event_type]
    assert event.extensions["knowntype"] is True
    assert event.id == f"gitea:{signed.headers['X-Gitea-Delivery']}"


def test_each_example_is_a_distinct_delivery() -> None:
    body = orjson.dumps(PROVIDER.examples.body("push", datetime.now(tz=UTC)))
    first = PROVIDER.examples.sign(body, "push", Credentials(secret=KEY), 0.0)
    second = PROVIDER.examples.sign(body, "push", Credentials(secret=KEY), 0.0)
    assert first.headers["X-Gitea-Delivery"] != second.headers["X-Gitea-Delivery"]
    assert first.headers["X-Gitea-Signature"] == second.headers["X-Gitea-Signature"]


def test_signing_without_a_secret_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError, match="--secret"):
        PROVIDER.examples.sign(b"{}", "push", Credentials(), 0.0)
    # `hookbus send` probes the credentials with an empty object: that must sign, not fail.
    assert "X-Gitea-Signature" in PROVIDER.examples.sign(b"{}", "push", Credentials(secret=KEY), 0.0).headers


def test_the_example_source_is_what_hookbus_dev_configures() -> None:
    assert PROVIDER.examples.source == {"secrets": ["${SECRET}"]}
