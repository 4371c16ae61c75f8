"""Where the one streaming query's micro-batches go: every Delta table and every output topic,
each exactly once, written from the driver.

A batch's output rows are few (tens to thousands), so :class:`PipelineSink` runs one Spark job
per batch, the collect of the rows as Arrow, and writes the rest from the driver:

* each Delta table with delta-rs (:class:`DeltaTables`): the append carries the table's app
  transaction (app id ``<output>-<checkpoint query id>``, version = the batch id), the same
  protocol Spark's ``txnAppId``/``txnVersion`` use, and a batch the table already holds is
  skipped, so a batch replayed after a crash is not appended twice;
* every output topic in one Kafka transaction (:class:`TransactionalTopics`): the records of
  all outputs and the batch id (committed as the offsets and metadata of the pipeline's
  consumer group) commit together, and a batch already committed is not sent again, so a
  ``read_committed`` consumer sees each row exactly once.  A driver that dies mid-write
  leaves an open transaction that its successor's ``init_transactions`` aborts.

The two are independent: a crash between them replays the batch, and each side skips what it
already holds.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame

from include.analytics import DEAD_LETTERS, SCHEMAS
from include.kafka.security import confluent_kafka_options
from include.settings import Settings
from spark_jobs.pipeline import OUTPUT_COLUMN

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")

# How many batches' reports wait for the progress listener before the oldest are dropped.
KEEP_REPORTS = 64


def checkpoint_query_id(checkpoint: Path) -> str:
    """The query id Spark stored in the checkpoint when the query first started."""
    with open(checkpoint / "metadata", encoding="utf-8") as handle:
        return str(json.loads(handle.readline())["id"])


def batch_end_offsets(checkpoint: Path, batch_id: int) -> dict[str, dict[str, int]]:
    """The source offsets batch `batch_id` reads up to, from the checkpoint's offset log
    (``{topic: {partition: next offset}}``; written by Spark before the batch runs)."""
    lines = (checkpoint / "offsets" / str(batch_id)).read_text(encoding="utf-8").splitlines()
    found: dict[str, dict[str, int]] = {}
    for line in lines[2:]:  # version line, batch metadata, then one line per source
        offsets = json.loads(line)
        if isinstance(offsets, dict):
            for topic, parts in offsets.items():
                found[topic] = {str(p): int(o) for p, o in parts.items()}
    return found


@contextmanager
def job_name(batch: DataFrame, name: str) -> Iterator[None]:
    """Names the Spark jobs started inside (the name the Spark UI and its REST API show;
    their description keeps the query and batch): where a batch's time goes, by step."""
    from pyspark.traceback_utils import SCCallSiteSync

    context = batch.sparkSession.sparkContext
    context.setLocalProperty("callSite.short", name)
    # PySpark's own call-site guard (around collects) would put its Python frame over the
    # name, unless it sees itself already inside one.
    SCCallSiteSync._spark_stack_depth += 1
    try:
        yield
    finally:
        SCCallSiteSync._spark_stack_depth -= 1
        context.setLocalProperty("callSite.short", None)  # type: ignore[arg-type]


def collect_arrow(batch: DataFrame) -> pa.Table:
    """The batch's rows as one Arrow table, in one Spark job.

    Not ``DataFrame.toArrow()``: it casts the result to a schema in which a struct column's
    non-nullable fields stay non-nullable, and Arrow refuses that cast where the struct
    itself is null (every other output's rows here)."""
    batches = batch._collect_as_arrow(split_batches=False, empty_list_if_zero_records=True)
    if not batches:
        return pa.table({OUTPUT_COLUMN: pa.array([], pa.string())})
    return pa.Table.from_batches(batches)


def output_rows(batch: pa.Table, output: str) -> pa.Table:
    """The rows of `output` in a collected batch, in its table's declared schema."""
    mine = batch.filter(pc.equal(batch.column(OUTPUT_COLUMN), output))
    rows = pa.Table.from_struct_array(mine.column(output).combine_chunks())
    return rows.cast(SCHEMAS[output])


class DeltaTables:
    """Appends to the sink tables with delta-rs, each batch at most once per table."""

    def __init__(self, paths: Mapping[str, Path], app_suffix: str) -> None:
        self.paths = dict(paths)
        self.app_suffix = app_suffix
        self._tables: dict[str, Any] = {}

    def app_id(self, output: str) -> str:
        """The table's app transaction id: the output and the checkpoint's query id (a fresh
        checkpoint restarts batch ids at 0 and must not be mistaken for a replay)."""
        return f"{output}-{self.app_suffix}"

    def _table(self, output: str) -> Any:
        from deltalake import DeltaTable

        table = self._tables.get(output)
        if table is not None:
            try:
                table.update_incremental()
                return table
            except Exception as error:  # e.g. the log it would read on from was cleaned
                log.info("reloading table %s from its newest checkpoint (%s)", output, error)
        path = self.paths[output]
        if not (path / "_delta_log").is_dir():
            return None
        table = self._tables[output] = DeltaTable(str(path))
        return table

    def append(self, output: str, rows: pa.Table, batch_id: int) -> bool:
        """Append `rows` as batch `batch_id`; False when the table holds that batch already."""
        from deltalake import CommitProperties, Transaction, write_deltalake

        app_id = self.app_id(output)
        table = self._table(output)
        if table is not None:
            done = table.transaction_version(app_id)
            if done is not None and done >= batch_id:
                return False
        properties = CommitProperties(app_transactions=[Transaction(app_id, batch_id)])
        write_deltalake(
            table if table is not None else str(self.paths[output]),
            rows,
            mode="append",
            commit_properties=properties,
        )
        return True


# How often a batch's Kafka transaction is tried before the batch fails (the query then
# stops, and the supervisor restarts it).
SEND_TRIES = 5

# How much longer than its own timeout a transactional call may block before the producer
# is given up: librdkafka's send_offsets_to_transaction can block past its timeout while
# the group coordinator is away (a broker restart; confluentinc/librdkafka#5456).
STUCK_GRACE_SECONDS = 15.0


class StuckCall(Exception):
    """A Kafka client call that did not return in its time."""


def bounded(call: Callable[[], Any], seconds: float, what: str) -> Any:
    """`call()` in a thread of its own, given up after `seconds`: :class:`StuckCall` then,
    and the thread is left to end whenever the client lets it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=run, name=f"kafka-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise StuckCall(f"{what} did not return in {seconds:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# Fault injection for the crash tests: the batch id at which the driver kills itself (its
# whole process group, like kill -9) with the batch's records in Kafka, not yet committed.
KILL_IN_TOPIC_WRITE = "ECOM_TEST_KILL_IN_TOPIC_WRITE"


def fault_point(variable: str, batch_id: int, producer: Any, state_dir: Path) -> None:
    """Kill the driver here, once, when the environment asks for it at this batch; a file
    in the state dir marks that it happened."""
    wanted = os.environ.get(variable)
    if wanted is None or int(wanted) != batch_id:
        return
    marker = state_dir / f".{variable.lower()}-{batch_id}"
    if marker.exists():
        return
    marker.touch()
    producer.flush(30)  # the records are in the log, their transaction still open
    log.warning("fault injection: killing the driver inside batch %d's topic write", batch_id)
    os.killpg(os.getpgid(0), signal.SIGKILL)


class TransactionalTopics:
    """Writes a batch's records to the output topics in one Kafka transaction, at most once
    per batch.

    The transactional id and the consumer group are the pipeline's (``<prefix>-<checkpoint
    query id>``): a restarted driver fences its predecessor and finds what it committed.  The
    batch id rides in the same transaction as the group's committed offsets (the input
    offsets the batch read up to, so Kafka's tools show how far the outputs are) with
    ``<query id>:<batch id>`` as their metadata.
    """

    def __init__(
        self, options: Mapping[str, str], name: str, input_topic: str, state_dir: Path
    ) -> None:
        from confluent_kafka import Consumer

        self.name = name
        self.input_topic = input_topic
        self.state_dir = state_dir
        self.options = {
            **options,
            "transactional.id": name,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            # A batch's writes take seconds; a driver that died mid-transaction is aborted
            # by its successor's init_transactions long before this.
            "transaction.timeout.ms": 120_000,
        }
        # Each transactional call's own timeout (a commit gets twice this).
        self.timeout_seconds = 60.0
        self.producer = self._new_producer()
        self.consumer = Consumer(
            {
                **options,
                "group.id": name,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.group = self.consumer.consumer_group_metadata()

    def _new_producer(self) -> Any:
        from confluent_kafka import Producer

        producer = Producer(self.options)
        wait = self.timeout_seconds
        bounded(lambda: producer.init_transactions(wait), wait + STUCK_GRACE_SECONDS, "init")
        return producer

    def last_batch(self, query_id: str) -> int | None:
        """The newest batch id committed by this checkpoint's pipeline (None: none yet)."""
        from confluent_kafka import TopicPartition

        (committed,) = self.consumer.committed([TopicPartition(self.input_topic, 0)], timeout=30)
        marker = committed.metadata or ""
        owner, _, batch = marker.rpartition(":")
        if owner != query_id or not batch.isdigit():
            return None
        return int(batch)

    def send(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        query_id: str,
        batch_id: int,
        read_up_to: Mapping[str, int],
    ) -> bool:
        """Send ``(topic, key, value)`` records as batch `batch_id`; False when that batch
        was committed before (a replay).

        A broker that restarts or moves its coordinator fails a transaction: it is aborted
        (a fatal error: the producer is made anew, which fences the old one) and sent again,
        up to :data:`SEND_TRIES` times, before the error fails the batch."""
        from confluent_kafka import KafkaException

        for attempt in range(1, SEND_TRIES + 1):
            try:
                done = self.last_batch(query_id)
                if done is not None and done >= batch_id:
                    return False
                self._transaction(records, query_id, batch_id, read_up_to)
                return True
            except (KafkaException, StuckCall) as failure:
                error = failure.args[0] if failure.args else None
                if attempt == SEND_TRIES:
                    raise
                log.warning(
                    "batch %d: the Kafka transaction failed (%s); sending it again (try %d of %d)",
                    batch_id,
                    error,
                    attempt + 1,
                    SEND_TRIES,
                )
                try:
                    self._recover(failure)
                except (KafkaException, StuckCall) as still:  # the next try starts anew
                    log.warning(
                        "batch %d: the Kafka producer did not recover yet (%s)", batch_id, still
                    )
                time.sleep(min(30.0, 2.0**attempt))
        return True  # not reached: the last try returns or raises

    def _transaction(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        query_id: str,
        batch_id: int,
        read_up_to: Mapping[str, int],
    ) -> None:
        from confluent_kafka import TopicPartition

        self.producer.begin_transaction()
        for topic, key, value in records:
            while True:
                try:
                    self.producer.produce(topic, value=value, key=key)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.1)
            self.producer.poll(0)
        marker = f"{query_id}:{batch_id}"
        offsets = [
            TopicPartition(self.input_topic, int(p), int(o), metadata=marker)
            for p, o in sorted(read_up_to.items(), key=lambda item: int(item[0]))
        ] or [TopicPartition(self.input_topic, 0, 0, metadata=marker)]
        producer, wait = self.producer, self.timeout_seconds
        bounded(
            lambda: producer.send_offsets_to_transaction(offsets, self.group, wait),
            wait + STUCK_GRACE_SECONDS,
            "send-offsets",
        )
        fault_point(KILL_IN_TOPIC_WRITE, batch_id, self.producer, self.state_dir)
        # A commit waits for the batch's records to be acknowledged too: twice as long.
        bounded(
            lambda: producer.commit_transaction(2 * wait), 2 * wait + STUCK_GRACE_SECONDS, "commit"
        )

    def _recover(self, failure: Exception) -> None:
        """After a failed transaction: abort it, or make a new producer when the old one
        cannot go on (a fatal error, or a call that never returned: the new producer's
        init_transactions fences the old one and aborts its open transaction)."""
        from confluent_kafka import KafkaException

        error = failure.args[0] if failure.args else None
        if isinstance(failure, StuckCall) or (error is not None and error.fatal()):
            self.producer = self._new_producer()
            return
        producer, wait = self.producer, self.timeout_seconds
        try:
            bounded(lambda: producer.abort_transaction(wait), wait + STUCK_GRACE_SECONDS, "abort")
        except (KafkaException, StuckCall):
            self.producer = self._new_producer()

    def close(self) -> None:
        """Flush and close the clients."""
        self.producer.flush(10)
        self.consumer.close()


class PipelineSink:
    """The one query's ``foreachBatch`` function: collect the batch once, then every table and
    every topic (module docstring).  :meth:`report` gives the progress listener a recent
    batch's rows per output and the milliseconds of its steps."""

    def __init__(
        self,
        settings: Settings,
        outputs: Sequence[str],
        checkpoint: Path,
        topics: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.outputs = list(outputs)
        self.checkpoint = checkpoint
        self.topics = dict(topics)
        self._reports: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._tables: DeltaTables | None = None
        self._kafka: TransactionalTopics | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="delta-write")

    def _writers(self) -> tuple[str, DeltaTables, TransactionalTopics]:
        # The checkpoint's query id exists only once the query has started.
        query_id = checkpoint_query_id(self.checkpoint)
        if self._tables is None or self._kafka is None:
            self._tables = DeltaTables(
                {o: self.settings.paths.table_path(o) for o in self.outputs}, query_id
            )
            self._kafka = TransactionalTopics(
                confluent_kafka_options(self.settings),
                f"ecom-pipeline-{query_id}",
                self.settings.kafka.input_topic,
                self.settings.state,
            )
        return query_id, self._tables, self._kafka

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        with job_name(batch, "collect outputs"):
            collected = collect_arrow(batch)
        collect_ms = (time.monotonic() - started) * 1000
        counts = {o: 0 for o in self.outputs}
        if collected.num_rows:
            names, tallies = pc.value_counts(collected.column(OUTPUT_COLUMN)).flatten()
            counts |= dict(zip(names.to_pylist(), tallies.to_pylist(), strict=True))
        timings = {"collect_ms": collect_ms}
        if collected.num_rows:
            timings |= self._write(collected, batch_id, counts)
        with self._lock:
            self._reports[batch_id] = {"rows": counts, "ms": timings}
            for old in sorted(self._reports)[:-KEEP_REPORTS]:
                del self._reports[old]

    def report(self, batch_id: int) -> dict[str, Any] | None:
        """Batch `batch_id`'s rows per output (``rows``) and the milliseconds of its steps
        (``ms``: collect, Kafka transaction, Delta appends); None when not (or no longer)
        known."""
        with self._lock:
            return self._reports.get(batch_id)

    def _write(
        self, collected: pa.Table, batch_id: int, counts: Mapping[str, int]
    ) -> dict[str, float]:
        query_id, tables, kafka = self._writers()
        present = [o for o in self.outputs if counts.get(o)]
        started = time.monotonic()
        appends = {
            o: self._pool.submit(tables.append, o, output_rows(collected, o), batch_id)
            for o in present
        }
        records = list(
            zip(
                [self.topics[o] for o in collected.column(OUTPUT_COLUMN).to_pylist()],
                collected.column("key").to_pylist(),
                collected.column("value").to_pylist(),
                strict=True,
            )
        )
        read_up_to = batch_end_offsets(self.checkpoint, batch_id).get(
            self.settings.kafka.input_topic, {}
        )
        sent = kafka.send(records, query_id, batch_id, read_up_to)
        kafka_ms = (time.monotonic() - started) * 1000
        skipped = [o for o, done in appends.items() if not done.result()]
        delta_ms = (time.monotonic() - started) * 1000
        if skipped or not sent:
            log.info(
                "batch %d replayed: %s already held it",
                batch_id,
                ", ".join([*(f"table {o}" for o in skipped), *([] if sent else ["the topics"])]),
            )
        return {"kafka_ms": kafka_ms, "delta_ms": delta_ms}

    def close(self) -> None:
        """Close the Kafka clients and the writer threads."""
        self._pool.shutdown(wait=True)
        if self._kafka is not None:
            self._kafka.close()


def sink_topics(settings: Settings, outputs: Sequence[str]) -> dict[str, str]:
    """The topic of each output: ``analytics.<name>`` per analytic, the dead-letter topic."""
    return {
        o: settings.kafka.dead_letter_topic if o == DEAD_LETTERS.name else settings.output_topic(o)
        for o in outputs
    }
