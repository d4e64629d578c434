"""The example sink on its own: configured from a section, opened, given batches, closed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import structlog
from hookbus_jsonl_sink import SINK, JsonlSettings

from hookbus.cloudevent import CloudEvent
from hookbus.errors import ConfigError
from hookbus.sink import SinkContext


def _context() -> SinkContext:
    return SinkContext(name="audit", log=structlog.get_logger())


def _event(number: int) -> CloudEvent:
    return CloudEvent(id=f"evt-{number}", source="hookbus/test", type="test.created", data={"n": number})


async def test_batches_are_appended_as_json_lines(tmp_path: Path) -> None:
    settings = SINK.parse("audit", {"path": str(tmp_path / "out" / "events.jsonl"), "fsync": False})
    sink = SINK.create(settings, _context())
    await sink.open()
    try:
        first = await sink.write([_event(1), _event(2)])
        second = await sink.write([_event(3)])
    finally:
        await sink.close()
    assert [event.id for event in [*first.written, *second.written]] == ["evt-1", "evt-2", "evt-3"]
    lines = (tmp_path / "out" / "events.jsonl").read_bytes().splitlines()
    assert [CloudEvent.from_dict(orjson.loads(line)) for line in lines] == [_event(1), _event(2), _event(3)]


def test_the_section_is_checked() -> None:
    assert SINK.parse("audit", {"path": "a.jsonl"}) == JsonlSettings(path="a.jsonl", fsync=True)
    with pytest.raises(ConfigError) as missing:
        SINK.parse("audit", {})
    assert missing.value.key == "sinks.audit.path"
    with pytest.raises(ConfigError) as unknown:
        SINK.parse("audit", {"path": "a.jsonl", "rotate": True})
    assert unknown.value.key == "sinks.audit.rotate"
