"""``hookbus normalize``: vector files and raw-event dumps in, CloudEvents out."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from hookbus.cloudevent import CloudEvent
from hookbus.config import SourceConfig
from hookbus.rawevent import RawEvent
from normalizer.errors import DumpRecordError
from normalizer.normalizer import Normalizer
from tests.normalizer.test_service import encoding_fails_for
from tests.providers.mapping_support import raw_event
from tests.support import vector_files
from tools.normalize import dump_record, load_record, run
from tools.vectors import load_vectors

REPO = Path(__file__).resolve().parents[2]
OFFICERND = SourceConfig(name="rnd", provider="officernd")
GENERIC = SourceConfig(name="crm", provider="generic")
SCHEMA_CHECK = Normalizer({})


def _hookbus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookbus", *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.vectors
def test_normalize_prints_one_valid_event_per_accepted_vector(vectors_dir: Path) -> None:
    files = vector_files(vectors_dir)
    entries = [entry for path in files for entry in load_vectors(path)]
    result = _hookbus("normalize", *map(str, files))
    assert result.returncode == 0, result.stderr
    events = [CloudEvent.from_dict(orjson.loads(line)) for line in result.stdout.splitlines()]
    assert len(events) == sum(entry.expect == "accept" for entry in entries)
    for event in events:
        SCHEMA_CHECK.validate(event)
    assert {event.extensions["ingestid"] for event in events} <= {f"offline-{entry.name}" for entry in entries}
    rejected = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert len(rejected) == sum(entry.expect == "reject" for entry in entries)
    assert all(set(line) >= {"rejected", "entry"} for line in rejected)


def test_dump_record_round_trips_a_raw_event() -> None:
    raw = raw_event(OFFICERND, b'{"event": "e"}\n\x00', headers={"officernd-signature": "t=1,signature=ab"})
    headers, value = load_record(dump_record(raw.kafka_headers(), raw.body))
    assert RawEvent.from_kafka(headers, value) == raw
    assert load_record(dump_record([], None)) == ([], None)


@pytest.mark.parametrize(
    "line",
    [
        b"nope",
        b"[]",
        b'{"headers": [["a"]], "value_b64": ""}',
        b'{"headers": [], "value_b64": "!!"}',
        b'{"value_b64": 5}',
    ],
)
def test_load_record_refuses_what_is_not_a_dumped_record(line: bytes) -> None:
    with pytest.raises(DumpRecordError):
        load_record(line)


def test_normalize_reads_raw_event_dumps_and_fails_on_unmappable_ones(tmp_path: Path) -> None:
    good = raw_event(
        OFFICERND,
        b'{"event": "e1", "eventType": "member.created", "data": {"object": {"_id": "m1"}}, '
        b'"createdAt": "2020-10-14T15:14:18Z"}',
    )
    bad = raw_event(OFFICERND, b'{"event": "e2",}', ingest_id="ing-bad")
    dump = tmp_path / "raw.jsonl"
    dump.write_bytes(b"\n".join(dump_record(raw.kafka_headers(), raw.body) for raw in (good, bad)) + b"\nnot json\n")
    result = _hookbus("normalize", str(dump))
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    event = CloudEvent.from_dict(orjson.loads(line))
    assert (event.id, event.type, event.extensions["ingestid"]) == ("rnd:e1", "officernd.member.created", "ing-test")
    problems = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert [(problem["error"], problem["stage"], problem["entry"]) for problem in problems] == [
        ("unparseable_body", "map", f"{dump}:2"),
        ("bad_dump_record", "read", f"{dump}:3"),
    ]


def test_normalize_takes_sources_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "hookbus.yaml"
    config.write_text(
        "sources:\n"
        "  - name: crm\n"
        "    provider: generic\n"
        "    ip_allowlist: [0.0.0.0/0]\n"
        "    mapping: {id: /event_id, subject: /customer_id, partition_key: /customer_id}\n",
        encoding="utf-8",
    )
    vectors = tmp_path / "crm.json"
    vectors.write_bytes(
        orjson.dumps(
            [
                {
                    "provider": "generic",
                    "name": "one",
                    "source_name": "crm",
                    "source": {"ip_allowlist": ["0.0.0.0/0"]},
                    "request": {"body": '{"event_id": "e-9", "customer_id": "c_7"}', "remote_addr": "192.0.2.1"},
                    "now": 1767225600,
                }
            ]
        )
    )
    result = _hookbus("normalize", "--config", str(config), str(vectors))
    assert result.returncode == 0, result.stderr
    event = orjson.loads(result.stdout)
    assert (event["id"], event["subject"], event["partitionkey"]) == ("crm:e-9", "c_7", "crm:c_7")


def _member_created(event_id: str) -> RawEvent:
    body = (
        f'{{"event": "{event_id}", "eventType": "member.created", "data": {{"object": {{"_id": "m1"}}}}, '
        '"createdAt": "2020-10-14T15:14:18Z"}'
    )
    return raw_event(OFFICERND, body, ingest_id=f"ing-{event_id}")


def _dump(path: Path, *raws: RawEvent) -> Path:
    path.write_bytes(b"\n".join(dump_record(raw.kafka_headers(), raw.body) for raw in raws) + b"\n")
    return path


def test_normalize_reports_an_event_that_cannot_be_encoded_as_a_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoding_fails_for(monkeypatch, "rnd:e-bad")
    dump = _dump(tmp_path / "raw.jsonl", _member_created("e-bad"), _member_created("e-good"))
    out, err = io.StringIO(), io.StringIO()

    exit_code = run([str(dump)], None, out, err)

    assert exit_code == 1
    assert [CloudEvent.from_dict(orjson.loads(line)).id for line in out.getvalue().splitlines()] == ["rnd:e-good"]
    [problem] = [orjson.loads(line) for line in err.getvalue().splitlines()]
    assert problem == {"error": "internal_error", "stage": "normalize", "detail": "ValueError", "entry": f"{dump}:1"}


def test_normalize_maps_or_dead_letters_a_body_nested_300_levels_without_a_traceback(tmp_path: Path) -> None:
    deep = raw_event(GENERIC, b'{"payload": ' + b"[" * 300 + b"]" * 300 + b"}", ingest_id="ing-deep")
    dump = _dump(tmp_path / "raw.jsonl", deep, _member_created("e-after"))

    result = _hookbus("normalize", str(dump))

    events = [CloudEvent.from_dict(orjson.loads(line)) for line in result.stdout.splitlines()]
    problems = [orjson.loads(line) for line in result.stderr.splitlines()]
    # Whether it maps is the mapping's business: either it maps, or it is reported as the dead
    # letter it would be, with a stage and a reason.
    if len(events) == 2:
        assert (result.returncode, problems) == (0, [])
    else:
        assert result.returncode == 1
        [problem] = problems
        assert problem["error"]
        assert problem["stage"]
        assert problem["entry"] == f"{dump}:1"
    assert events[-1].id == "rnd:e-after"
