"""The runtime every Kafka stage runs on, and the two kinds of stage it drives.

A stage instance is one member of its consumer group. The runtime
(:mod:`hookbus.stage.runtime`) reads the topic in batches (at most ``batch_size``
records, waiting at most ``batch_timeout_seconds`` after the first: a sink's bulk write
gains from full batches, while the normalizer, which maps record by record, takes what one
fetch returns), hands each batch to the stage, and commits it once the stage has settled it. Two kinds of stage plug in:

* a **processor** (:mod:`hookbus.stage.processor`): each record becomes output records or a
  failure; the runtime publishes the outputs and dead letters (the normalizer);
* an **output** (:mod:`hookbus.stage.output`): a batch of CloudEvents is written to a
  destination, with an outcome per event: written, retry or rejected (the sinks).

Delivery is at-least-once, committed after the acknowledgement: a batch's offsets are
committed only once everything it produced (outputs, writes, dead letters) is acknowledged
by Kafka (acks=all) or the destination. Nothing is lost: a crash before the commit replays
the batch. What that replay duplicates carries the same event id, since ids are derived
from the raw event, so the sinks, which upsert by id, absorb it. Kafka transactions
(exactly-once) were not chosen: they would not make the sinks exactly-once anyway (an HTTP
forward or a database sits outside the transaction, so idempotence by id is needed
regardless), they add a transaction round trip to every batch and a transactional id per
instance to manage, and they make the events invisible to ``read_committed`` readers until
the commit.

Order: one batch is settled at a time, and commits go in order. The next batch is read
(and decoded or mapped) while one is settled, and a batch's commit overlaps the next one's
settling, but a batch is never published or written before the one before it is settled.
Records of one partition are published in order (:mod:`hookbus.stage.publisher`: the
producer is idempotent, and a send that fails is retried with everything sent after it).

Failures never stop a partition. What the stage cannot handle is dead-lettered whole, with
why in ``hookbus-dlq-*`` headers (:mod:`hookbus.stage.deadletter`), and committed past, so
the records after it, on its partition and the others, go on. The line is drawn between a
record and an outage:

* **Contained: anything one record does.** Every exception while the stage works on one
  record is that record's failure, never the stage's. Tried ``max_attempts`` times (a
  passing failure of the process may go away), then dead-lettered with the stage and a
  reason, the detail being the exception's class name only (its message may quote the
  body) (:mod:`hookbus.stage.containment`):

  - a processor's work on a record - for the normalizer: reading the raw event, mapping,
    validating and encoding the CloudEvent (``to_kafka``) - raising: the processor's stage
    (``normalize``), reason ``internal_error``;
  - an output stage decoding a record raising: stage ``read``, reason ``internal_error``
    (a record that is not a CloudEvent is dead-lettered at once, ``not_a_cloudevent``);
  - a sink's ``write`` raising what is neither a :class:`~hookbus.sink.SinkError` nor an
    outage: a whole batch cannot pin it on one event, so after ``max_attempts`` crashes
    the rest of the batch is written one event at a time, in order, and an event that
    still crashes alone ``max_attempts`` times is dead-lettered (stage ``write``, reason
    ``write_crashed``) while its batch-mates are written; a non-retriable ``SinkError``
    rejects its events at once (stage ``write``, its reason);
  - Kafka refusing a record's output on its own (too large, say): stage ``publish``,
    reason ``publish_failed``; the producer is replaced so the refusal does not break the
    sequence of the records after it.

* **Retried forever: outages.** Transient Kafka errors
  (:func:`~hookbus.stage.backoff.is_transient`) fetching, publishing or committing, and a
  destination that cannot be reached - a sink's retriable ``SinkError``
  (``SinkUnavailableError``: the database is down), what a sink asks to retry, or an
  exception that says so by its kind (:func:`~hookbus.stage.backoff.is_outage`: a
  connection or a timeout) - are retried with capped exponential backoff and jitter
  (:class:`~hookbus.stage.backoff.Backoff`), without bound: dead-lettering them would empty
  the topic into the dead-letter topic while the destination is down. A dead letter Kafka
  refuses is retried forever too: giving it up would lose the record.

While a batch waits to be retried, fetching is paused (the consumer is still polled, or the
group would take it for dead), so a destination that is down neither spins nor fills memory.

On a rebalance the batch in flight is settled and committed before the partitions are
given up; a batch waiting to retry is abandoned instead, uncommitted, so an outage does not
hold up the group; records fetched before the rebalance are read again from the last
commit. A commit the group no longer accepts is lost to the rebalance: the partitions' new
owner handles the batch again. When the stop event is set (SIGTERM), a batch being settled
is finished and committed, a batch waiting to retry is abandoned uncommitted, and the
stage returns.
"""

__all__: list[str] = []
