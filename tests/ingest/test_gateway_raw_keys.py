"""The live gateway keys raw records by entity: distinct entities of one source spread over
the partitions of a multi-partition raw topic, and one entity's records stay in one
partition, in the order they were acknowledged; a request whose entity the provider cannot
tell is keyed by its source."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from datetime import UTC, datetime

import aiohttp
import orjson
import pytest

from hookbus.config import KafkaConfig, parse_source
from hookbus.provider import Credentials, provider
from tests.ingest.conftest import RawTopic, StartGateway, gateway_config, headers

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

SECRET = b"raw-keys-secret-5c1e8f27"
API_KEY = "raw-keys-api-key-93d0b6a4"
PARTITIONS = 6
ENTITIES = 24
ONE_ENTITY_UPDATES = 12


async def post(http: aiohttp.ClientSession, url: str, body: bytes, event_type: str, provider_name: str) -> None:
    credentials = Credentials(secret=SECRET, api_key=API_KEY)
    signed = provider(provider_name).examples.sign(body, event_type, credentials, time.time())
    async with http.post(url, data=body, headers=signed.headers, params=signed.query) as response:
        assert response.status == 200, await response.text()


async def test_entities_spread_over_partitions_and_each_keeps_its_order(
    kafka_config: KafkaConfig, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    kafka = dataclasses.replace(kafka_config, topic_partitions=PARTITIONS)
    october = parse_source({"secrets": [SECRET.decode()]}, name="lender", provider="october")
    # Octamile never retries, so it is published through the spooling path.
    octamile = parse_source({"api_key": API_KEY}, name="insurer", provider="octamile")
    gateway = await start_gateway(
        gateway_config(kafka, [october, octamile], ack_timeout_seconds=10.0, answer_deadline_seconds=11.0)
    )
    now = datetime.now(UTC)
    for number in range(ENTITIES):
        body = {
            "event": "update_request",
            "requestId": f"request-{number}",
            "diff": {"property": "status", "after": "accepted"},
        }
        await post(http, gateway.url("/webhooks/lender"), orjson.dumps(body), "update_request", "october")
    for step in range(ONE_ENTITY_UPDATES):
        body = {"event": "update_request", "requestId": "request-0", "diff": {"property": "step", "after": step}}
        await post(http, gateway.url("/webhooks/lender"), orjson.dumps(body), "update_request", "october")
    approvals = [orjson.dumps(provider("octamile").examples.body("approved", now)) for _ in range(ENTITIES)]
    for body in approvals:
        await post(http, gateway.url("/webhooks/insurer"), body, "approved", "octamile")
    unkeyed = orjson.dumps({"event": "new_thing"})
    await post(http, gateway.url("/webhooks/lender"), unkeyed, "new_thing", "october")

    records = await RawTopic(kafka).records()
    partitions_by_key: defaultdict[bytes, set[int]] = defaultdict(set)
    for record in records:
        assert record.key is not None
        partitions_by_key[record.key].add(record.partition)
    # Each entity of each source has one partition, and the entities use several.
    assert all(len(partitions) == 1 for partitions in partitions_by_key.values())
    for source in (b"lender/", b"insurer/"):
        used = set().union(*(partitions for key, partitions in partitions_by_key.items() if key.startswith(source)))
        assert len(used) > 1, source
    expected_keys = {f"lender/october:request:request-{number}".encode() for number in range(ENTITIES)}
    expected_keys |= {f"insurer/octamile:transaction:{orjson.loads(body)['trnsctnId']}".encode() for body in approvals}
    # October's undocumented event names no entity: its own provider-wide key, under its source.
    expected_keys.add(b"lender/october")
    assert set(partitions_by_key) == expected_keys

    one_entity = [record for record in records if record.key == b"lender/october:request:request-0"]
    steps = [orjson.loads(record.value)["diff"]["after"] for record in sorted(one_entity, key=lambda r: r.offset)]
    assert steps == ["accepted", *range(ONE_ENTITY_UPDATES)]
    assert all(headers(record)["hookbus-source"] == b"lender" for record in one_entity)
