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
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
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
from spark_jobs.delta_tables import DeltaTables
from spark_jobs.output_topics import TransactionalTopics
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
    # A private method, which the type checker sees as a column (DataFrame.__getattr__).
    collect: Any = batch._collect_as_arrow
    batches = collect(split_batches=False, empty_list_if_zero_records=True)
    if not batches:
        return pa.table({OUTPUT_COLUMN: pa.array([], pa.string())})
    return pa.Table.from_batches(batches)


def output_rows(batch: pa.Table, output: str) -> pa.Table:
    """The rows of `output` in a collected batch, in its table's declared schema."""
    mine = batch.filter(pc.equal(batch.column(OUTPUT_COLUMN), output))
    rows = pa.Table.from_struct_array(mine.column(output).combine_chunks())
    return rows.cast(SCHEMAS[output])


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
                self.settings.kafka.transaction_call_timeout_seconds,
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
