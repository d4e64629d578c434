"""``hookbus requests``: what the gateway answered, from its request log, newest first.

It reads the request-log topic (``kafka.requests_topic``, :mod:`hookbus.requestlog`) from
``--since`` (default: the last hour) to the end offsets taken when it starts, with a consumer
of its own (no group, no commit), and prints the entries the filters select: one line each,
``--json`` for one JSON entry per line, or ``--id`` for one entry in full. Filters combine with
AND. The topic keeps what its retention allows (``request_log.retention_hours``).

``--trail ID`` shows one request's whole trail instead - its verdict explained, the event
it became, its dead letters and each sink's deliveries - as the console's API gives it
(``GET /api/v1/requests/{id}``, :mod:`tools.console.api`), asked of the console the
configuration's ``console:`` section names, with its token: the trail needs the console's
index, which joins four topics that reading one topic here cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from hookbus.config import HookbusConfig, load_config
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import client_options, topic_partitions
from hookbus.rawevent import format_time
from hookbus.requestlog import RequestLogEntry, RequestLogFormatError
from tools.replay import parse_moment
from tools.topicread import Span, read_spans

__all__ = ["RequestFilter", "add_arguments", "main", "matching_entries"]

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
DEFAULT_SINCE = "1h"
DEFAULT_LIMIT = 50


@dataclass(frozen=True, slots=True)
class RequestFilter:
    since: float
    sources: frozenset[str] = frozenset()
    verdicts: frozenset[str] = frozenset()
    reasons: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    entry_id: str | None = None

    def selects(self, entry: RequestLogEntry) -> bool:
        return (
            entry.time >= self.since
            and (not self.sources or entry.source in self.sources)
            and (not self.verdicts or entry.verdict in self.verdicts)
            and (not self.reasons or entry.reason in self.reasons)
            and (not self.statuses or entry.status in self.statuses)
            and (self.entry_id is None or self.entry_id in {entry.id, entry.ingest_id})
        )


async def matching_entries(config: HookbusConfig, selected: RequestFilter) -> tuple[list[RequestLogEntry], int]:
    """The entries ``selected`` selects, newest first, and how many records were not entries."""
    topic = config.kafka.requests_topic
    consumer = AIOKafkaConsumer(**client_options(config.kafka), enable_auto_commit=False)
    try:
        await consumer.start()
        # A gateway that never ran has no such topic: then there is nothing to read.
        partitions = [TopicPartition(topic, number) for number in await topic_partitions(config.kafka, topic)]
        spans: dict[TopicPartition, Span] = {}
        if partitions:
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.offsets_for_times({tp: int(selected.since * 1000) for tp in partitions})
            for tp in partitions:
                start = starts[tp].offset if starts[tp] is not None else ends[tp]
                if start < ends[tp]:
                    spans[tp] = Span(start, ends[tp])
        entries, unreadable = [], 0
        async for record in read_spans(consumer, spans):
            try:
                entry = RequestLogEntry.from_json(record.value or b"")
            except RequestLogFormatError:
                unreadable += 1
                continue
            if selected.selects(entry):
                entries.append(entry)
    except KafkaError as exc:
        raise KafkaUnavailableError(f"cannot read {topic}: {exc!r}") from exc
    finally:
        await consumer.stop()
    entries.sort(key=lambda entry: entry.time, reverse=True)
    return entries, unreadable


def _line(entry: RequestLogEntry) -> str:
    where = ""
    if entry.raw is not None:
        where = (
            " raw=spool" if entry.raw.spooled else f" raw={entry.raw.topic}/{entry.raw.partition}@{entry.raw.offset}"
        )
    reason = f" reason={entry.reason}" if entry.reason else ""
    return (
        f"{format_time(entry.time)} {entry.status} {entry.verdict:<6} {entry.method} {entry.source}"
        f"{reason} from={entry.client_addr or '-'} size={entry.size if entry.size is not None else '-'}"
        f" id={entry.id}{where}"
    )


def _full(entry: RequestLogEntry) -> bytes:
    document = orjson.loads(entry.to_json())
    if entry.body_prefix is not None:
        document["body_prefix_text"] = entry.body_prefix.decode("utf-8", "replace")
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


def print_entries(entries: Sequence[RequestLogEntry], args: argparse.Namespace, out: TextIO) -> None:
    shown = entries if args.id else entries[: args.limit]
    for entry in shown:
        if args.id:
            out.write(_full(entry).decode() + "\n")
        elif args.json:
            out.write(entry.to_json().decode() + "\n")
        else:
            out.write(_line(entry) + "\n")
    if not args.json and not args.id and len(entries) > len(shown):
        out.write(f"... {len(entries) - len(shown)} older entries not shown (--limit)\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_moment, default=None, metavar="TIME", help="RFC 3339 or 2h (default 1h)")
    parser.add_argument("--source", action="append", default=[], help="this source only (repeatable)")
    parser.add_argument("--verdict", action="append", default=[], choices=["accept", "reject", "failed"])
    parser.add_argument("--reason", action="append", default=[], help="e.g. bad_signature (repeatable)")
    parser.add_argument("--status", action="append", default=[], type=int, help="HTTP status (repeatable)")
    parser.add_argument("--id", help="one entry, in full: its id or ingest id")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=f"lines shown (default {DEFAULT_LIMIT})")
    parser.add_argument("--json", action="store_true", help="one JSON entry per line")
    parser.add_argument(
        "--trail", metavar="ID", help="one request's verdict, event, dead letters and deliveries, from the console"
    )


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    config = load_config(args.config)
    if args.trail is not None:
        from tools.console.trail import print_trail

        return print_trail(config, args.trail, out if out is not None else sys.stdout, as_json=args.json)
    selected = RequestFilter(
        since=args.since if args.since is not None else parse_moment(DEFAULT_SINCE, now=time.time()),
        sources=frozenset(args.source),
        verdicts=frozenset(args.verdict),
        reasons=frozenset(args.reason),
        statuses=frozenset(args.status),
        entry_id=args.id,
    )
    try:
        entries, unreadable = asyncio.run(matching_entries(config, selected))
    except KafkaUnavailableError as exc:
        print(f"hookbus requests: {exc.detail}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print_entries(entries, args, out if out is not None else sys.stdout)
    if unreadable:
        print(
            f"hookbus requests: {unreadable} records of {config.kafka.requests_topic} are not entries", file=sys.stderr
        )
    return EXIT_OK
