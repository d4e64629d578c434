"""Stage 6: the same jobs done by the peer stream processor, as ratios hookbus / peer.

The peer is the Benthos engine (``github.com/benthosdev/benthos/v4``), the project Redpanda
Connect was renamed from: same ``http_server`` input, Bloblang and ``kafka_franz`` output.
bench/run builds a minimal distribution of it (bench/peer/main.go) from the Go module proxy;
see bench/README.md for why not the ``redpanda-data/connect`` module itself.

1. http: ``http_server`` input checking the October HMAC in Bloblang, publishing to the same
   broker with acks=all, answering 200 after the acknowledgement; against the gateway.
2. mapping: a consumer group mapping the raw mix to CloudEvents JSON in Bloblang; against
   the normalizer.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from bench import payloads
from bench.common import (
    BenchError,
    Measurement,
    Settings,
    StageResult,
    UsageSampler,
    child,
    new_port,
    tool,
    write_config,
)
from bench.load import attack, write_targets
from bench.stage_gateway import CASES, measure_server
from bench.stage_normalizer import consumer_command, drain
from hookbus.config import HookbusConfig, KafkaConfig, load_config

HTTP_CASE = "october-1k"
_OCTOBER_SECRET = (payloads.credentials("october").secret or b"").decode()

_CHECK_OCTOBER = f"""
let timestamp = metadata("X-O5r-Timestamp").or("")
let expected = ($timestamp + content().string()).hash("hmac_sha256", "{_OCTOBER_SECRET}").encode("hex")
root = if $expected != metadata("X-O5r-Hash").or("") {{
  throw("bad signature")
}} else if (now().ts_unix_milli() - $timestamp.number()).abs() > {payloads.TOLERANCE_SECONDS * 1000} {{
  throw("stale timestamp")
}} else {{
  content()
}}
"""

_TO_CLOUDEVENT = """
let provider = metadata("hookbus-provider")
let body = content().parse_json()
let subject = match $provider {
  "october" => $body.requestId.or($body.offerId).string(),
  "officernd" => $body.data.object._id.string(),
  "offerte_adviseur" => $body.payload.lead_id.string(),
  "octamile" => $body.trnsctnId.string(),
  _ => throw("unknown provider " + $provider),
}
root.specversion = "1.0"
root.id = metadata("hookbus-ingest-id")
root.source = "/hookbus/" + metadata("hookbus-source")
root.type = match $provider {
  "october" => "com.october." + $body.event,
  "officernd" => "com.officernd." + $body.eventType,
  "offerte_adviseur" => "nl.offerteadviseur." + $body.type,
  _ => "com.octamile.application." + if $body.status == "a" { "approved" } else { "declined" },
}
root.subject = $subject
root.time = metadata("hookbus-received-at")
root.datacontenttype = "application/json"
root.partitionkey = metadata("hookbus-source") + ":" + $subject
root.data = $body
meta = deleted()
meta partitionkey = root.partitionkey
"""


def _kafka_output(kafka: KafkaConfig, topic: str, key: str) -> dict[str, object]:
    return {
        "kafka_franz": {
            "seed_brokers": [kafka.bootstrap_servers],
            "topic": topic,
            "key": key,
            # hookbus's codec, so both write the same bytes to the broker.
            "compression": kafka.compression_type,
            "max_in_flight": 64,
            "max_message_bytes": "16MiB",
        }
    }


def http_pipeline(config: HookbusConfig, port: int) -> dict[str, object]:
    return {
        "http": {"enabled": False},
        "logger": {"level": "WARN"},
        "input": {
            "http_server": {
                "address": f"127.0.0.1:{port}",
                "path": "/webhooks/october",
                "allowed_verbs": ["POST"],
                "timeout": "10s",
            }
        },
        "pipeline": {"processors": [{"mapping": _CHECK_OCTOBER}]},
        "output": {
            "switch": {
                "cases": [
                    {"check": "errored()", "output": {"reject": "${! error() }"}},
                    {"output": _kafka_output(config.kafka, config.kafka.raw_topic, "october")},
                ]
            }
        },
    }


def mapping_pipeline(config: HookbusConfig) -> dict[str, object]:
    kafka = config.kafka
    return {
        "http": {"enabled": False},
        "logger": {"level": "WARN"},
        "input": {
            "kafka_franz": {
                "seed_brokers": [kafka.bootstrap_servers],
                "topics": [kafka.raw_topic],
                "consumer_group": f"{kafka.raw_topic}-peer",
                "start_from_oldest": True,
            }
        },
        "pipeline": {"processors": [{"mapping": _TO_CLOUDEVENT}]},
        "output": _kafka_output(kafka, kafka.events_topic, '${! meta("partitionkey") }'),
    }


def _peer_command(pipeline: dict[str, object], path: Path) -> list[str]:
    # JSON is YAML: the peer reads it as its config file.
    path.write_text(json.dumps(pipeline, indent=1), encoding="utf-8")
    return [str(tool("benthos-peer")), "-c", str(path)]


def measure_http(settings: Settings, bootstrap: str, workdir: Path) -> list[Measurement]:
    case = next(case for case in CASES if case.name == HTTP_CASE)
    config_path = write_config(workdir / "http.yaml", bootstrap, f"bench-peer-http-{uuid.uuid4().hex[:8]}")
    ours = measure_server("gateway", [case], settings, config_path, workdir, latency_case=None)[0]
    ours.stage, ours.case = "peer", "hookbus/http"
    config = load_config(config_path)
    port = new_port()
    command = _peer_command(http_pipeline(config, port), workdir / "peer-http.json")
    with child(command, log=workdir / "peer-http.log", port=port) as process:
        targets = write_targets(
            workdir / "peer.targets", (case.make(n) for n in range(case.distinct)), f"http://127.0.0.1:{port}"
        )
        with UsageSampler(process.pid) as sampler:
            result = attack(targets, seconds=settings.attack_seconds, workdir=workdir, name="peer-http")
    if result.ok == 0:
        raise BenchError(f"the peer accepted no request ({result.statuses}); see {workdir / 'peer-http.log'}")
    theirs = Measurement(
        "peer", "peer/http", result.rate, "req/s", result.latency, sampler.usage(), ok=result.ok, failed=result.failed
    )
    return [ours, theirs]


def measure_mapping(settings: Settings, bootstrap: str, workdir: Path) -> list[Measurement]:
    count = settings.drain_events
    measurements = []
    for name, command_for in (
        ("hookbus/mapping", lambda config: consumer_command("normalizer", config)),
        ("peer/mapping", lambda config: _peer_command(mapping_pipeline(config), workdir / "peer-mapping.json")),
    ):
        measurement = drain(
            name.replace("/", "-"),
            "mix",
            [request.raw_event() for request in payloads.mix(count)],
            settings=settings,
            bootstrap=bootstrap,
            workdir=workdir,
            command_for=command_for,
        )
        measurement.stage, measurement.case = "peer", name
        measurements.append(measurement)
    return measurements


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("peer")
    tool("benthos-peer")
    result.measurements.extend(measure_http(settings, bootstrap, workdir))
    result.measurements.extend(measure_mapping(settings, bootstrap, workdir))
    result.notes.append(
        "Peer: Benthos v4.27.0 (Redpanda Connect's upstream engine), minimal build with http_server, Bloblang and"
        f" kafka_franz (idempotent, acks=all, {KafkaConfig().compression_type}); it reads the raw topic hookbus's"
        " producer wrote, in hookbus's codec. The redpanda-data/connect/v4 module itself is refused by the"
        " Go module proxy reachable here (403 'This module version is not available' for its version list and"
        " for the v4.40.0 source zip), so it could not be built."
    )
    result.notes.append(
        "http: hookbus gateway vs the peer's http_server on signed October 1 KiB requests, both verifying the"
        " HMAC and answering after the broker's acknowledgement. mapping: hookbus normalizer vs a Bloblang"
        " mapping of the same raw mix to CloudEvents JSON (the peer does no JSON Schema validation; pipeline"
        " threads at the peer's default, one per core)."
    )
    return result
