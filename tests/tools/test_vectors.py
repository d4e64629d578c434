"""The vector file loader and ``hookbus verify``, run as the command users run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hookbus.rawevent import AuthMethod
from hookbus.request import Accept
from ingest.decision import decide
from ingest.errors import VectorFileError
from tests.support import vector_files
from tools.vectors import MISMATCH_MARKER, load_vectors

API_KEY = "om_test_4b1f9c7e2a6d8b0c3e5f7a9b1c3d5e7f"


def entry(name: str = "approved", **changes: Any) -> dict[str, Any]:
    """An Octamile entry that is accepted, with ``changes`` applied."""
    base: dict[str, Any] = {
        "provider": "octamile",
        "name": name,
        "note": "ignored",
        "source": {"api_key": API_KEY, "ip_allowlist": ["198.51.100.0/24"]},
        "request": {
            "method": "POST",
            "query": {"api-key": API_KEY},
            "headers": {"Content-Type": "application/json"},
            "body": '{"status":"a","statusNote":"café"}',
            "remote_addr": "198.51.100.7",
        },
        "now": 1_767_225_600,
        "expect": "accept",
    }
    return {**base, **changes}


def write(path: Path, content: Any) -> Path:
    """``content`` as is when bytes or text, else as JSON."""
    if not isinstance(content, str | bytes):
        content = json.dumps(content)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def hookbus_verify(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookbus", "verify", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- loading -------------------------------------------------------------------------------


def test_loads_an_entry_as_the_request_received(tmp_path: Path) -> None:
    request = {
        **entry()["request"],
        "method": "put",
        "headers": {"X-Twice": ["one", "two"], "x-once": "1"},
        "query": {"api-key": API_KEY, "tag": ["a", "b"]},
    }
    [loaded] = load_vectors(write(tmp_path / "one.json", [entry(request=request, source_name="cars")]))
    assert loaded.name == "approved"
    assert loaded.provider == "octamile"
    assert loaded.source.name == "cars"
    assert loaded.request.method == "PUT"
    assert loaded.request.body == '{"status":"a","statusNote":"café"}'.encode()
    assert loaded.request.client_addr == "198.51.100.7"
    assert loaded.request.headers.getall("x-twice") == ["one", "two"]
    assert loaded.request.headers["X-ONCE"] == "1"
    assert loaded.request.query.getall("tag") == ["a", "b"]
    assert (loaded.now, loaded.expect, loaded.reason) == (1_767_225_600, "accept", None)


def test_an_entry_without_now_or_expect_is_judged_as_of_now(tmp_path: Path) -> None:
    pasted = {key: value for key, value in entry().items() if key not in {"now", "expect"}}
    before = time.time()
    [loaded] = load_vectors(write(tmp_path / "pasted.json", [pasted]))
    assert before <= loaded.now <= time.time()
    assert loaded.expect is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[", "not JSON"),
        (b"\xff[]", "not JSON"),
        ({"provider": "octamile"}, "must be a JSON list of entries, not dict"),
        ([entry(), "text"], "entry 1: must be a JSON object, not str"),
        ([entry(), entry("no-provider", provider=None)], "entry 1 (no-provider): provider must be a string"),
        ([entry(name=None)], "entry 0: name must be a string"),
        (
            [entry("mystery", provider="mystery")],
            "entry 0 (mystery): bad source configuration: <config>: source 'mystery': key 'provider': unknown",
        ),
        (
            [entry("open", source={"methods": ["POST"]})],
            "entry 0 (open): bad source configuration: <config>: source 'octamile': key 'api_key': ",
        ),
        (
            [entry("signed", source={"api_key": API_KEY, "secrets": ["s"]})],
            "entry 0 (signed): bad source configuration: <config>: source 'octamile': key 'secrets': ",
        ),
        ([entry("no-request", request=[])], "entry 0 (no-request): request must be a JSON object"),
        ([entry("maybe", expect="maybe")], "entry 0 (maybe): expect must be one of accept, reject"),
        ([entry("late", now="noon")], "entry 0 (late): now must be a Unix time in seconds"),
        ([entry("why", reason=7)], "entry 0 (why): reason must be a string"),
        (
            [entry("numbers", request={**entry()["request"], "headers": {"X-Count": 3}})],
            "entry 0 (numbers): request.headers.X-Count must be a string or a list of strings",
        ),
        (
            [entry("bytes", request={**entry()["request"], "body": {"status": "a"}})],
            "entry 0 (bytes): body must be a string",
        ),
    ],
    ids=[
        "truncated",
        "not-utf8",
        "not-a-list",
        "entry-not-an-object",
        "no-provider",
        "no-name",
        "unknown-provider",
        "source-open-to-anyone",
        "source-with-unused-secrets",
        "request-not-an-object",
        "unknown-expectation",
        "now-not-a-number",
        "reason-not-text",
        "header-not-text",
        "body-not-text",
    ],
)
def test_a_bad_file_says_where_and_what(tmp_path: Path, content: Any, message: str) -> None:
    path = write(tmp_path / "bad.json", content)
    with pytest.raises(VectorFileError) as raised:
        load_vectors(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_a_vector_file_error(tmp_path: Path) -> None:
    with pytest.raises(VectorFileError, match="cannot read"):
        load_vectors(tmp_path / "absent.json")


# --- hookbus verify ------------------------------------------------------------------------


def test_hookbus_verify_agrees_with_every_shared_vector(vectors_dir: Path) -> None:
    files = vector_files(vectors_dir)
    total = sum(len(load_vectors(path)) for path in files)
    result = hookbus_verify(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == total + 1
    assert MISMATCH_MARKER not in result.stdout
    assert lines[-1] == f"{total} entries, {total} as expected, 0 differ"
    assert "october/seed-example" in result.stdout


def test_hookbus_verify_marks_an_entry_judged_otherwise(vectors_dir: Path, tmp_path: Path) -> None:
    entries = json.loads((vectors_dir / "october.json").read_text(encoding="utf-8"))
    altered = [dict(item) for item in entries if item["name"] in {"seed-example", "tampered-body"}]
    altered[0].update(expect="reject", reason="bad_signature")
    result = hookbus_verify(write(tmp_path / "october-altered.json", altered))
    assert result.returncode == 1
    first, second, summary = result.stdout.splitlines()
    assert first.startswith("october-altered/seed-example")
    assert first.endswith(f"{MISMATCH_MARKER}: expected reject bad_signature")
    assert second.split() == ["october-altered/tampered-body", "reject", "bad_signature"]
    assert summary == "2 entries, 1 as expected, 1 differ"


def test_hookbus_verify_holds_the_reason_to_the_expectation(tmp_path: Path) -> None:
    wrong_reason = entry("wrong-key", request={**entry()["request"], "query": {"api-key": "x"}})
    wrong_reason.update(expect="reject", reason="ip_not_allowed")
    any_reason = entry("any-reason", request={**entry()["request"], "query": {"api-key": "x"}}, expect="reject")
    unexpected = {key: value for key, value in entry("pasted").items() if key != "expect"}
    result = hookbus_verify(write(tmp_path / "reasons.json", [wrong_reason, any_reason, unexpected]))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "reasons/wrong-key",
        "reject",
        "bad_api_key",
        f"{MISMATCH_MARKER}:",
        "expected",
        "reject",
        "ip_not_allowed",
    ]
    assert lines[1].split() == ["reasons/any-reason", "reject", "bad_api_key"]
    assert lines[2].split() == ["reasons/pasted", "accept", "-"]


def test_hookbus_verify_aligns_its_columns(tmp_path: Path) -> None:
    short = write(tmp_path / "a.json", [entry("x")])
    long = write(tmp_path / "a-much-longer-file-name.json", [entry("with-a-long-name", expect="reject")])
    result = hookbus_verify(short, long)
    lines = result.stdout.splitlines()[:2]
    assert len({line.index("accept") for line in lines}) == 1


def test_hookbus_verify_exits_2_on_an_unreadable_file(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", [entry()])
    broken = write(tmp_path / "broken.json", "{not json")
    result = hookbus_verify(good, broken)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"hookbus verify: {broken}: not JSON: " + result.stderr.split(": not JSON: ")[1].strip()
    ]
    assert result.stdout.splitlines()[0].split() == ["good/approved", "accept", "-"]


def test_a_loaded_entry_judges_as_the_gateway_does(tmp_path: Path) -> None:
    [loaded] = load_vectors(write(tmp_path / "one.json", [entry()]))
    assert decide(loaded.source, loaded.request, loaded.now) == Accept(AuthMethod.API_KEY)
