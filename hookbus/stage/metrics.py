"""The metrics of the Kafka stages: what the runtime measures of every stage, and what an output stage counts.

Runtime metrics are labelled by the ``consumer_group`` (``hookbus-normalizer``,
``hookbus-sink-<name>``: one per stage, and the name Kafka's own tools use); a sink's by its
instance name, ``sink``. The normalizer's own counts are in ``normalizer.metrics``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from hookbus.metrics import SECONDS_BUCKETS

__all__ = [
    "BATCH_SECONDS",
    "CONSUMER_LAG",
    "EVENT_AGE_BUCKETS",
    "LAG_REFRESH_SECONDS",
    "RETRY_CRASHED",
    "RETRY_REQUESTED",
    "RETRY_UNAVAILABLE",
    "SINK_DEAD_LETTERS",
    "SINK_DELIVERY_REPORTS_FAILED",
    "SINK_EVENT_AGE_SECONDS",
    "SINK_RETRIES",
    "SINK_SKIPPED",
    "SINK_WRITE_SECONDS",
    "SINK_WRITTEN",
]

LAG_REFRESH_SECONDS: Final = 5.0
"""How often the consumer lag is measured (one ListOffsets request for the assigned partitions)."""

BATCH_SECONDS: Final = Histogram(
    "hookbus_stage_batch_duration_seconds",
    "Time to settle one batch: publish or write everything it holds, dead letters included, retries too.",
    ["consumer_group"],
    buckets=SECONDS_BUCKETS,
)
CONSUMER_LAG: Final = Gauge(
    "hookbus_stage_consumer_lag_records",
    "Records of an assigned partition after the stage's last commit: what a restart would read again, "
    "or what is still to read.",
    ["consumer_group", "topic", "partition"],
    multiprocess_mode="livesum",
)

SINK_WRITTEN: Final = Counter(
    "hookbus_sink_events_written_total", "Records whose event the sink wrote (a row, a forward, a record).", ["sink"]
)
SINK_SKIPPED: Final = Counter(
    "hookbus_sink_events_skipped_total", "Records the sink's types and sources filters left out.", ["sink"]
)
SINK_DEAD_LETTERS: Final = Counter(
    "hookbus_sink_dead_letters_total", "Records sent to the sink's dead-letter topic, by reason.", ["sink", "reason"]
)
SINK_DELIVERY_REPORTS_FAILED: Final = Counter(
    "hookbus_sink_delivery_reports_failed_total",
    "Delivery reports Kafka did not acknowledge (the events themselves were handled; only their reports are missing).",
    ["sink"],
)
SINK_RETRIES: Final = Counter(
    "hookbus_sink_write_retries_total",
    "Waits before writing again: the sink asked to retry, its destination is unavailable, or it crashed.",
    ["sink", "reason"],
)
SINK_WRITE_SECONDS: Final = Histogram(
    "hookbus_sink_write_duration_seconds",
    "Time of one call of the sink's write, whatever its outcome.",
    ["sink"],
    buckets=SECONDS_BUCKETS,
)

EVENT_AGE_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""From a pipeline keeping up (tens of milliseconds) to one an hour behind."""
SINK_EVENT_AGE_SECONDS: Final = Histogram(
    "hookbus_sink_event_age_seconds",
    "Time from the gateway's acceptance of a request (the event's receivedtime) to the sink's write of its event: "
    "the pipeline's end-to-end latency (a replayed event counts its whole age).",
    ["sink"],
    buckets=EVENT_AGE_BUCKETS,
)

RETRY_REQUESTED: Final = "retry_requested"
RETRY_UNAVAILABLE: Final = "unavailable"
RETRY_CRASHED: Final = "crashed"
