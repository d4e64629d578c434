"""``hookbus config``: the schema takes every configuration of the repository and refuses misspelt keys;
``check`` says ok or names the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from hookbus.cli import EXIT_CONFIG_ERROR, main
from hookbus.config import KafkaConfig
from tests.hookbus.test_config import GOOD
from tests.ingest.test_server import write_config
from tools.config_command import file_schema
from tools.devstack import dev_config_document

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    ROOT / "examples" / "gateway.yaml",
    ROOT / "deploy" / "hookbus.yaml",
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = file_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator: jsonschema.Draft202012Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


SINKS = {
    "sinks": {
        "route": {"type": "kafka", "routes": [{"topic": "t", "types": ["a.*"]}], "batch_size": 10},
        "out": {"type": "http", "url": "https://example.com/", "secret": "${WEBHOOK_SECRET}", "mode": "binary"},
        "lines": {"type": "jsonl", "path": "/tmp/events.jsonl"},
        "local": {"type": "sqlite", "path": "/tmp/hookbus.db"},
    }
}
"""One section of each installed sink type."""


def written_by_the_tests(tmp_path: Path) -> list[Any]:
    gateway = write_config(tmp_path / "gateway.yaml", KafkaConfig(), 8080)
    return [yaml.safe_load(GOOD), yaml.safe_load(gateway.read_text(encoding="utf-8")), SINKS]


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_the_schema_takes_every_example_configuration(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    assert errors_of(validator, yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_the_schema_takes_the_configuration_hookbus_dev_runs(validator: jsonschema.Draft202012Validator) -> None:
    """dev.yaml and one example source of every installed provider."""
    assert errors_of(validator, dev_config_document()) == []


def test_the_schema_takes_the_configurations_the_tests_write(
    validator: jsonschema.Draft202012Validator, tmp_path: Path
) -> None:
    for document in written_by_the_tests(tmp_path):
        assert errors_of(validator, document) == []


def misspell(document: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """``document`` with the key at ``path`` given one letter too many."""
    changed = copy.deepcopy(document)
    parent: Any = changed
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    parent[f"{key}s"] = parent.pop(key)
    return changed


DEPLOY = yaml.safe_load((ROOT / "deploy" / "hookbus.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("document", "where"),
    [
        (misspell(DEPLOY, "sources"), ": Additional properties are not allowed ('sourcess'"),
        (misspell(DEPLOY, "kafka", "client_id"), "kafka: Additional properties are not allowed ('client_ids'"),
        (misspell(DEPLOY, "gateway", "port"), "gateway: Additional properties are not allowed ('ports'"),
        (misspell(DEPLOY, "sources", 0, "secrets"), "sources/0: "),
        (misspell(DEPLOY, "sources", 4, "mapping"), "sources/4: Additional properties are not allowed ('mappings'"),
        (misspell(DEPLOY, "normalizer", "group_id"), "normalizer: Additional properties are not allowed ('group_ids'"),
        (misspell(DEPLOY, "sinks", "pg", "table"), "sinks/pg: Additional properties are not allowed ('tables'"),
        ({"sources": [{"name": "a", "provider": "octobre", "secrets": ["s"]}]}, "sources/0/provider: 'octobre' is not"),
        ({"sinks": {"a": {"type": "carrier-pigeon"}}}, "sinks/a/type: 'carrier-pigeon' is not"),
        ({"gateway": {"port": "eighty"}}, "gateway/port: 'eighty' is not valid"),
        ({"normalizer": {"mode": "avro"}}, "normalizer/mode: 'avro' is not valid"),
        ({"sources": [{"name": "Bad Name", "provider": "octamile", "api_key": "k"}]}, "sources/0/name: "),
    ],
    ids=[
        "top-level",
        "kafka",
        "gateway",
        "source",
        "provider-option",
        "normalizer",
        "sink",
        "unknown-provider",
        "unknown-sink-type",
        "not-a-number",
        "not-a-mode",
        "bad-source-name",
    ],
)
def test_the_schema_refuses_a_misspelt_key_or_a_bad_value(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any], where: str
) -> None:
    errors = errors_of(validator, document)
    assert any(error.startswith(where) for error in errors), errors


def test_a_signing_provider_needs_secrets_in_the_schema_too(validator: jsonschema.Draft202012Validator) -> None:
    assert errors_of(validator, {"sources": [{"name": "o", "provider": "october"}]})
    assert not errors_of(validator, {"sources": [{"name": "o", "provider": "october", "secrets": ["${KEY}"]}]})


def test_schema_writes_the_schema_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "hookbus.schema.json"

    assert main(["config", "schema", "--output", str(output)]) == 0
    assert json.loads(output.read_text(encoding="utf-8")) == file_schema()
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_check_says_ok_for_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    path = tmp_path / "hookbus.yaml"
    path.write_text(yaml.safe_dump(SINKS), encoding="utf-8")

    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == "ok\n"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"kafka": {"bootstrap": "x"}}, "key 'kafka.bootstrap': unknown key"),
        (
            {"sources": [{"name": "c", "provider": "octamile", "api_key": "k", "secrets": ["s"]}]},
            "octamile signs nothing",
        ),
        ({"normalizer": {"batch_size": 0}}, "key 'normalizer.batch_size': must be at least 1"),
        ({"sinks": {"archive": {"type": "sqlite", "tabel": "x"}}}, "key 'sinks.archive.tabel': unknown key"),
    ],
    ids=["core", "provider-options", "normalizer", "sink"],
)
def test_check_prints_one_line_naming_the_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: dict[str, Any], message: str
) -> None:
    path = tmp_path / "hookbus.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")

    assert main(["config", "check", str(path)]) == EXIT_CONFIG_ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hookbus: config error: {path}: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
