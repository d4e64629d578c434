"""The real docker-compose.yml, running: health, delivery end to end, crashes, restarts, shutdown.

Run by scripts/containers against the stack it started (see conftest.py). The tests run in
file order and leave the stack running and healthy for the next.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

from hookbus.ops_server import DESTINATION_UNREACHABLE, KAFKA_UNREACHABLE
from hookbus.provider import Credentials, provider
from tests.containers.conftest import SERVICES, Stack, StackError
from tools.send import send_events

# Every source of deploy/hookbus.yaml (the test checks it is every one): name -> provider, and
# the variable of deploy/hookbus.env each is signed (a secret) or authenticated (an API key) with.
SIGNED_SOURCES = {
    "october": ("october", "OCTOBER_WEBHOOK_KEY"),
    "officernd": ("officernd", "OFFICERND_WEBHOOK_SECRET"),
    "offerte_adviseur": ("offerte_adviseur", "OFFERTE_ADVISEUR_WEBHOOK_SECRET"),
}
API_KEY_SOURCES = {
    "octamile": ("octamile", "OCTAMILE_API_KEY"),
    "crm": ("generic", "CRM_API_KEY"),
}
GATEWAY_PORT = 8080
CONSOLE_PORT = 8091
CONSOLE_TOKEN_ENV = "HOOKBUS_CONSOLE_TOKEN"
GATEWAY_USER = "10001"
SPOOL_DIR = "/var/lib/hookbus/spool"
_INGEST_ID = re.compile(r"[A-Za-z0-9_-]+")
_POLL_SECONDS = 1.0


def _credentials(stack: Stack, source: str) -> tuple[str, Credentials]:
    env = stack.env_file("hookbus")
    if source in SIGNED_SOURCES:
        provider_name, variable = SIGNED_SOURCES[source]
        return provider_name, Credentials(secret=env[variable].encode("utf-8"))
    provider_name, variable = API_KEY_SOURCES[source]
    return provider_name, Credentials(api_key=env[variable])


def send(stack: Stack, source: str, *, event_type: str | None = None, count: int = 1) -> list[str]:
    """Post ``count`` fresh signed examples to the gateway's published port; their ingest ids."""
    provider_name, credentials = _credentials(stack, source)
    url = f"http://127.0.0.1:{stack.published_port('gateway', GATEWAY_PORT)}"
    answers = asyncio.run(
        send_events(
            url=url,
            source=source,
            provider_name=provider_name,
            event_type=event_type,
            credentials=credentials,
            count=count,
        )
    )
    refused = [(answer.status, answer.detail) for answer in answers if not answer.accepted]
    assert not refused, f"the gateway refused {source}: {refused}"
    ids = [answer.ingest_id for answer in answers]
    assert all(isinstance(ingest_id, str) and _INGEST_ID.fullmatch(ingest_id) for ingest_id in ids), ids
    return [ingest_id for ingest_id in ids if ingest_id is not None]


def stored(stack: Stack, ingest_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Ingest id -> (the provider of its rows, how many rows came from it), for those with any."""
    listed = ",".join(f"'{ingest_id}'" for ingest_id in ingest_ids)  # each checked against _INGEST_ID by send()
    where = f"event->>'ingestid' IN ({listed})"
    rows = stack.psql(f"SELECT event->>'ingestid', provider, count(*) FROM hookbus_events WHERE {where} GROUP BY 1, 2")  # noqa: S608
    found: dict[str, tuple[str, int]] = {}
    for row in rows.splitlines():
        ingest_id, provider_name, count = row.split("|")
        previous = found.get(ingest_id, ("", 0))[1]
        found[ingest_id] = (provider_name, previous + int(count))
    return found


def wait_stored(stack: Stack, ingest_ids: Sequence[str], timeout: float = 120.0) -> dict[str, tuple[str, int]]:
    """Until every id has exactly one row (what :func:`stored` then says); fails on a missing row
    after ``timeout``, and at once on a duplicate."""
    deadline = time.monotonic() + timeout
    while True:
        found = stored(stack, ingest_ids)
        assert all(count == 1 for _, count in found.values()), f"stored more than once: {found}"
        if len(found) == len(set(ingest_ids)):
            return found
        if time.monotonic() > deadline:
            missing = sorted(set(ingest_ids) - set(found))
            raise StackError(f"{len(missing)} of {len(ingest_ids)} webhooks never reached PostgreSQL: {missing[:5]}")
        time.sleep(_POLL_SECONDS)


def health_output(stack: Stack, service: str) -> str:
    """What the service's last health checks printed."""
    container = stack.compose("ps", "--all", "--quiet", service).strip()
    state = json.loads(stack.compose_docker("inspect", "--format", "{{json .State.Health}}", container))
    return "\n".join(str(entry.get("Output", "")) for entry in state.get("Log", []))


ALL_HEALTHY = dict.fromkeys(SERVICES, "healthy")


def test_every_service_becomes_healthy(stack: Stack) -> None:
    stack.wait_health(ALL_HEALTHY)


def test_the_services_run_as_their_non_root_users(stack: Stack) -> None:
    for service in ("gateway", "normalizer", "sink-postgres", "console"):
        assert stack.compose("exec", "-T", service, "id", "-u").strip() == GATEWAY_USER


def test_signed_webhooks_of_every_configured_provider_land_in_postgres(stack: Stack) -> None:
    sources = {**SIGNED_SOURCES, **API_KEY_SOURCES}
    configured = yaml.safe_load((stack.directory / "deploy" / "hookbus.yaml").read_text(encoding="utf-8"))["sources"]
    assert {source: provider_name for source, (provider_name, _) in sources.items()} == {
        source["name"]: source["provider"] for source in configured
    }
    ingest_ids = [
        ingest_id
        for source, (provider_name, _) in sources.items()
        for event_type in provider(provider_name).examples.event_types
        for ingest_id in send(stack, source, event_type=event_type)
    ]

    rows = wait_stored(stack, ingest_ids)
    assert {provider_name for provider_name, _ in rows.values()} == {
        provider_name for provider_name, _ in sources.values()
    }


def console_get(stack: Stack, path: str, token: str | None = None) -> tuple[int, Any]:
    """``GET path`` of the console's published port, with ``token`` as the bearer: the status and the JSON."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{console_url(stack)}{path}", headers=headers)  # noqa: S310 - http on loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def console_url(stack: Stack) -> str:
    address = stack.compose("port", "console", str(CONSOLE_PORT)).strip().splitlines()[0]
    return f"http://{address}"


def test_the_console_needs_its_token_and_lists_a_webhook_sent_through_the_gateway(stack: Stack) -> None:
    # Published on the host's loopback only.
    assert console_url(stack).startswith("http://127.0.0.1:")
    status, body = console_get(stack, "/api/v1/requests")
    assert (status, body["error"]) == (401, "unauthorized")
    assert console_get(stack, "/readyz") == (200, {"ready": True, "reasons": []})
    token = stack.env_file("hookbus")[CONSOLE_TOKEN_ENV]

    (ingest_id,) = send(stack, "crm")

    # The request log, the event and the sink's report reach the console's index on their own.
    deadline = time.monotonic() + 120.0
    while True:
        status, body = console_get(stack, "/api/v1/requests?source=crm", token)
        assert status == 200, body
        listed = [item for item in body["items"] if item["ingest_id"] == ingest_id]
        if listed and listed[0]["delivery"] == "written":
            break
        if time.monotonic() > deadline:
            raise StackError(f"the console never listed {ingest_id} as written: {listed or body['items'][:3]}")
        time.sleep(_POLL_SECONDS)
    (item,) = listed
    assert (item["source"], item["verdict"], item["status"]) == ("crm", "accept", 200)
    assert item["event_id"]


def test_a_normalizer_killed_mid_stream_loses_nothing(stack: Stack) -> None:
    before = send(stack, "crm", count=20)
    stack.compose("kill", "--signal", "SIGKILL", "normalizer")
    during = send(stack, "crm", count=20)
    stack.compose("start", "normalizer")
    after = send(stack, "crm", count=20)

    wait_stored(stack, [*before, *during, *after], timeout=180.0)
    stack.wait_health(ALL_HEALTHY)


def test_down_then_up_keeps_the_rows_and_the_gateway_spool(stack: Stack) -> None:
    ingest_ids = send(stack, "octamile", count=5)
    wait_stored(stack, ingest_ids)
    marker = f"{SPOOL_DIR}/.kept-across-down-and-up"
    stack.compose("exec", "-T", "gateway", "touch", marker)
    spool_before = stack.compose("exec", "-T", "gateway", "ls", "-A", SPOOL_DIR)

    stack.compose("down", "--timeout", "30")
    stack.compose("up", "--detach", "--no-build", "--wait", "--wait-timeout", "240")

    wait_stored(stack, ingest_ids, timeout=10.0)
    owner = stack.compose("exec", "-T", "gateway", "stat", "-c", "%u %a", SPOOL_DIR).split()
    assert owner[0] == GATEWAY_USER
    assert set(spool_before.split()) <= set(stack.compose("exec", "-T", "gateway", "ls", "-A", SPOOL_DIR).split())
    stack.compose("exec", "-T", "gateway", "rm", marker)
    wait_stored(stack, send(stack, "octamile", count=5))


def test_stop_drains_the_gateway(stack: Stack) -> None:
    send(stack, "crm", count=5)
    stack.compose("stop", "--timeout", "30", "gateway")

    (gateway,) = [c for c in stack.containers() if c["Service"] == "gateway"]
    assert gateway["State"] == "exited"
    assert gateway["ExitCode"] == 0
    logs = stack.compose("logs", "--no-color", "--no-log-prefix", "--since", "2m", "gateway")
    assert '"draining"' in logs
    assert '"stopped"' in logs.rsplit('"draining"', 1)[1]
    assert "drain_timeout" not in logs

    stack.compose("start", "gateway")
    stack.wait_health(ALL_HEALTHY)


def test_the_sink_is_unhealthy_while_it_cannot_reach_postgres(stack: Stack) -> None:
    stack.compose("stop", "postgres")
    try:
        stack.wait_health({"sink-postgres": "unhealthy"}, timeout=120.0)
        assert DESTINATION_UNREACHABLE in health_output(stack, "sink-postgres")
        assert stack.health()["normalizer"] == "healthy"
    finally:
        stack.compose("start", "postgres")
    stack.wait_health(ALL_HEALTHY)


def test_the_stages_are_unhealthy_while_kafka_is_down(stack: Stack) -> None:
    stack.compose("stop", "kafka")
    try:
        stack.wait_health(dict.fromkeys(("gateway", "normalizer", "sink-postgres"), "unhealthy"), timeout=120.0)
        for service in ("normalizer", "sink-postgres"):
            assert KAFKA_UNREACHABLE in health_output(stack, service)
    finally:
        stack.compose("start", "kafka")
    stack.wait_health(ALL_HEALTHY, timeout=300.0)
    wait_stored(stack, send(stack, "crm", count=5))
