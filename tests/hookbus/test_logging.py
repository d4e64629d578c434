from __future__ import annotations

import io
import logging

import orjson

from hookbus.logging import configure_logging, get_logger


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
