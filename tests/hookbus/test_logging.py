from __future__ import annotations

import io
import logging

import orjson
import pytest

from hookbus.cli import build_parser
from hookbus.logging import (
    LOG_LEVEL_ENV,
    REPEAT_INTERVAL_SECONDS,
    LogFormat,
    LogOptions,
    configure_logging,
    get_logger,
)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_structlog_and_library_records_are_json_lines_on_one_stream() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    get_logger(service="gateway").info("listening", port=8080)
    logging.getLogger("aiokafka").warning("broker %s not reachable", "127.0.0.1:9092")

    first, second = lines(stream)
    assert first["event"] == "listening"
    assert first["service"] == "gateway"
    assert first["level"] == "info"
    assert second["event"] == "broker 127.0.0.1:9092 not reachable"
    assert second["logger"] == "aiokafka"


def test_an_aiohttp_traceback_keeps_the_error_kind_but_not_the_request_bytes() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        raise ValueError("Invalid header: X-API-Key: om_live_do_not_log_me")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")

    (record,) = lines(stream)
    assert "om_live_do_not_log_me" not in stream.getvalue()
    assert record["event"] == "Error handling request"
    assert record["error_type"] == "ValueError"


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_library_flood_shows_the_first_line_of_each_kind_then_a_count_per_interval() -> None:
    stream = io.StringIO()
    clock = SteppedClock()
    configure_logging("info", stream=stream, clock=clock)
    kafka = logging.getLogger("aiokafka")
    for attempt in range(1000):
        kafka.error("Unable connect to node with id %s: %s", 1, f"attempt {attempt}")
        kafka.error("Unable to update metadata from %s", [1])
    get_logger(service="gateway").info("request", status=503)
    logging.getLogger("aiokafka.producer.sender").warning("Got error produce response: %s", "NodeNotReadyError")

    shown = lines(stream)
    assert [line["event"] for line in shown] == [
        "Unable connect to node with id 1: attempt 0",
        "Unable to update metadata from [1]",
        "request",
        "Got error produce response: NodeNotReadyError",
    ]
    assert "repeated" not in shown[0]

    clock.now += REPEAT_INTERVAL_SECONDS
    kafka.error("Unable connect to node with id %s: %s", 1, "attempt 1000")
    summary = lines(stream)[-1]
    assert summary["event"] == "Unable connect to node with id 1: attempt 1000"
    assert summary["repeated"] == 999
    kafka.error("Unable connect to node with id %s: %s", 1, "attempt 1001")
    assert len(lines(stream)) == len(shown) + 1


def test_the_first_line_of_a_kind_seen_again_after_a_quiet_interval_is_shown() -> None:
    stream = io.StringIO()
    clock = SteppedClock()
    configure_logging("info", stream=stream, clock=clock)
    kafka = logging.getLogger("aiokafka")
    kafka.error("Unable to update metadata from %s", [1])
    clock.now += REPEAT_INTERVAL_SECONDS * 3
    kafka.error("Unable to update metadata from %s", [1])
    first, again = lines(stream)
    assert "repeated" not in first
    assert "repeated" not in again


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_writes_readable_lines_on_a_terminal_and_json_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    configure_logging("info", log_format=LogFormat.AUTO, stream=terminal)
    get_logger(service="dev").info("listening", port=8080)
    logging.getLogger("aiokafka").warning("broker %s not reachable", "127.0.0.1:9092")
    first, second = terminal.getvalue().splitlines()
    assert not first.startswith("{")
    for part in ("listening", "port=8080", "service=dev"):
        assert part in first
    assert "\x1b[" not in terminal.getvalue()
    assert "broker 127.0.0.1:9092 not reachable" in second
    assert "aiokafka" in second

    pipe = io.StringIO()
    configure_logging("info", log_format=LogFormat.AUTO, stream=pipe)
    get_logger(service="dev").info("listening", port=8080)
    (line,) = lines(pipe)
    assert line["event"] == "listening"


def test_json_is_kept_on_a_terminal_when_asked() -> None:
    terminal = Terminal()
    configure_logging("info", log_format=LogFormat.JSON, stream=terminal)
    get_logger().info("listening")
    assert orjson.loads(terminal.getvalue())["event"] == "listening"


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "warning", "--log-format", "console", "config", "schema"],
        ["config", "--log-level", "WARNING", "--log-format", "console", "schema"],
    ],
)
def test_log_options_are_taken_before_and_after_the_command(argv: list[str]) -> None:
    args = build_parser("config").parse_args(argv)
    assert LogOptions.from_args(args) == LogOptions(level="warning", log_format=LogFormat.CONSOLE)


def test_an_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser("config").parse_args(["--log-level", "bogus", "config", "schema"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


def test_an_unknown_log_level_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(LOG_LEVEL_ENV, "bogus")
    with pytest.raises(SystemExit):
        build_parser("config")
    assert "$HOOKBUS_LOG_LEVEL is 'bogus'" in capsys.readouterr().err
