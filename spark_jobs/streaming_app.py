"""The Spark Structured Streaming application: Kafka in, Delta tables and Kafka topics out.

Run it with spark-submit (PYTHONPATH must contain the project root so ``include`` imports)::

    PYTHONPATH=/work/main spark-submit --jars <comma-separated connector jars> \\
        spark_jobs/streaming_app.py --queries revenue_by_category,dead_letters

One SparkSession reads the input topic, parses and validates every record
(:mod:`spark_jobs.transforms`) and starts one streaming query per name in ``--queries``:

* ``revenue_by_category`` -- valid events, de-duplicated by event_id, aggregated into
  sliding windows; each micro-batch is appended to a Delta table exactly once (Delta's
  idempotent ``txnAppId``/``txnVersion`` writer options skip a batch replayed after a
  crash) and then written to the analytic's output topic (at least once, deterministic
  keys).
* ``dead_letters`` -- records that failed validation, appended to the quarantine Delta
  table the same way and written to the dead-letter topic.

Progress of every micro-batch goes to ``<metrics_dir>/progress.jsonl``.  The app stops
gracefully when ``--stop-file`` appears, ``--await-seconds`` pass, or SIGTERM/SIGINT
arrives (exit 0), and exits 1 with the error when a query fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # spark-submit runs this file as a script; the project root makes `include` and
    # `spark_jobs` importable even when PYTHONPATH was forgotten.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery, StreamingQueryListener

from include import checkpoints
from include.driver_lease import CheckpointInUse, DriverLease
from include.progress import progress_path
from include.runtime.spark_launch import SPARK_UMASK_CONF
from include.settings import AnalyticsSettings, Settings, get_settings
from include.tables import (
    CLICK_TO_PURCHASE_COLUMNS,
    FUNNEL_COLUMNS,
    HIGH_VALUE_USER_COLUMNS,
    REVENUE_COLUMNS,
    SESSION_COLUMNS,
)
from spark_jobs import transforms

log = logging.getLogger("streaming_app")

APP_NAME = "ecommerce-streaming"
REVENUE_QUERY = "revenue_by_category"
DEAD_LETTER_QUERY = "dead_letters"
HIGH_VALUE_QUERY = "high_value_users"
FUNNEL_QUERY = "conversion_funnel"
SESSION_QUERY = "user_sessions"
CLICK_QUERY = "click_to_purchase"
DEFAULT_QUERIES = ",".join(
    [REVENUE_QUERY, HIGH_VALUE_QUERY, FUNNEL_QUERY, SESSION_QUERY, CLICK_QUERY, DEAD_LETTER_QUERY]
)
STATE_STORE_PROVIDERS = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}
POLL_SECONDS = 1.0
# How long a graceful stop waits for the running micro-batches before interrupting them.
# Interrupting is still safe (the Delta writes are idempotent), just wasteful.  Below the
# supervisor's stop_timeout_seconds (120 s), so that the driver ends before a hard kill.
GRACEFUL_STOP_TIMEOUT_SECONDS = 90.0
STOP_POLL_SECONDS = 0.1
# Exit code when another driver holds a checkpoint (1 is a failed query).
EXIT_CHECKPOINT_IN_USE = 3
EXIT_CHECKPOINT_DAMAGED = 4


# ---------------------------------------------------------------- session and source

# What a micro-batch costs when it carries a few rows: mostly fixed work per batch and per
# task, not rows (profiled with Java Flight Recorder, see BENCHMARKS.md).
PER_BATCH_COST_CONF = {
    # Spark keeps 100 compiled classes; six queries and Delta's own plans need more, so at
    # 100 batches kept compiling their code again (janino: 22% of the JVM's samples, 2% now).
    "spark.sql.codegen.cache.maxEntries": "2000",
    # Delta rebuilds a table's state in 50 tasks by default, each shipping a Hadoop
    # configuration and generating its projections: our tables' logs are small.
    "spark.databricks.delta.snapshotPartitions": "2",
}


def session_conf(settings: Settings) -> dict[str, str]:
    """Spark settings the application depends on, whatever launched it."""
    return {
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        # The Spark UI has no login: nobody who can reach it may kill the streaming stages.
        "spark.ui.killEnabled": "false",
        # Tables and checkpoints as private as the rest of the state dir.
        **SPARK_UMASK_CONF,
        "spark.sql.session.timeZone": "UTC",
        # By default state lives off-heap in RocksDB; the changelog makes each commit a
        # small delta instead of a full snapshot upload.
        "spark.sql.streaming.stateStore.providerClass": STATE_STORE_PROVIDERS[
            settings.spark.state_store
        ],
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Checkpoint retention: the offsets, commits and state versions of this many
        # batches are kept (older ones are cleaned by Spark's maintenance).
        "spark.sql.streaming.minBatchesToRetain": str(settings.spark.min_batches_to_retain),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        **PER_BATCH_COST_CONF,
        **settings.spark.conf,
    }


def build_session(settings: Settings) -> SparkSession:
    builder = SparkSession.builder.appName(APP_NAME)
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        # Started by plain `python`, not spark-submit: nothing has chosen master, memory
        # or jars yet, so take them from the settings and the jar cache.
        builder = builder.master(settings.spark.master).config(
            "spark.driver.memory", settings.spark.driver_memory
        )
        jars = sorted((settings.jar_dir / "spark").glob("*.jar"))
        if jars:
            builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def read_events(
    spark: SparkSession, settings: Settings, starting_offsets: str, max_offsets: int
) -> DataFrame:
    """The input topic as a stream of Kafka records.

    failOnDataLoss keeps its default (true): offsets that vanished (retention, a recreated
    topic) stop the query loudly instead of skipping events silently.
    """
    return (
        spark.readStream.format("kafka")
        .options(**settings.spark_kafka_options())
        .option("subscribe", settings.kafka.input_topic)
        .option("startingOffsets", starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_offsets))
        .load()
    )


# ---------------------------------------------------------------- sinks


def checkpoint_query_id(checkpoint: Path) -> str:
    """The query id Spark stored in the checkpoint when the query first started."""
    with open(checkpoint / "metadata", encoding="utf-8") as handle:
        return str(json.loads(handle.readline())["id"])


@contextmanager
def job_name(batch: DataFrame, name: str) -> Iterator[None]:
    """Names the Spark jobs started inside (the name the Spark UI and its REST API show;
    their description keeps the query and batch): where a batch's time goes, by step."""
    context = batch.sparkSession.sparkContext
    context.setLocalProperty("callSite.short", name)
    try:
        yield
    finally:
        context.setLocalProperty("callSite.short", None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BatchSink:
    """Writes one micro-batch to a Delta table (exactly once) and a Kafka topic.

    The Delta append carries ``txnAppId``/``txnVersion``: Delta records the highest
    version committed per app id and skips a write whose version is not higher, so a batch
    replayed after a crash between the Delta commit and the checkpoint commit is not
    appended twice.  The app id is the query name plus the id stored in the checkpoint:
    a fresh checkpoint (batch ids restarting at 0) must not be mistaken for a replay.
    """

    query: str
    checkpoint: Path
    table: Path
    table_columns: Sequence[str]
    kafka_records: Callable[[DataFrame], DataFrame]
    topic: str
    kafka_options: Mapping[str, str]  # brokers and security: Settings.spark_kafka_options()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        batch.persist()
        try:
            # No-data batches (the watermark moved, nothing to emit) would add empty commits.
            with job_name(batch, "empty check"):
                if batch.isEmpty():
                    return
            app_id = f"{self.query}-{checkpoint_query_id(self.checkpoint)}"
            with job_name(batch, "Delta write"):
                (
                    batch.select(*self.table_columns)
                    .write.format("delta")
                    .mode("append")
                    .option("txnAppId", app_id)
                    .option("txnVersion", str(batch_id))
                    .save(str(self.table))
                )
            # After the table: a crash here replays the batch, the table skips it and Kafka
            # gets the rows again with the same keys (at least once).  Writing the topic
            # first saves it the Delta write (up to a second here) but widens that window to
            # the whole Delta write: the e2e campaign then saw a dead letter twice.
            with job_name(batch, "Kafka write"):
                (
                    self.kafka_records(batch)
                    .write.format("kafka")
                    .options(**self.kafka_options)
                    .option("topic", self.topic)
                    .save()
                )
        finally:
            batch.unpersist()


def start_query(
    result: DataFrame,
    name: str,
    sink: BatchSink,
    trigger_seconds: int,
) -> StreamingQuery:
    query = (
        result.writeStream.queryName(name)
        .outputMode("append")
        .option("checkpointLocation", str(sink.checkpoint))
        .trigger(processingTime=f"{trigger_seconds} seconds")
        .foreachBatch(sink)
        .start()
    )
    log.info(
        "started query %s, checkpoint %s, table %s, topic %s",
        name,
        sink.checkpoint,
        sink.table,
        sink.topic,
    )
    return query


@dataclass(frozen=True)
class Analytic:
    """One analytic: its transform, its table's columns and its Kafka key.

    ``deduplicates`` marks a transform that takes valid events as they come and
    de-duplicates them itself; every other transform gets de-duplicated events.
    """

    transform: Callable[[DataFrame, AnalyticsSettings], DataFrame]
    columns: Sequence[str]
    key_columns: Sequence[str]
    deduplicates: bool = False


ANALYTICS: dict[str, Analytic] = {
    REVENUE_QUERY: Analytic(
        transforms.revenue_by_category, REVENUE_COLUMNS, transforms.REVENUE_KEY_COLUMNS
    ),
    SESSION_QUERY: Analytic(
        transforms.user_sessions, SESSION_COLUMNS, ("user_id", "session_start")
    ),
    CLICK_QUERY: Analytic(
        transforms.click_to_purchase,
        CLICK_TO_PURCHASE_COLUMNS,
        ("click_event_id", "purchase_event_id"),
        deduplicates=True,
    ),
    HIGH_VALUE_QUERY: Analytic(
        transforms.high_value_users, HIGH_VALUE_USER_COLUMNS, ("user_id", "window_start")
    ),
    FUNNEL_QUERY: Analytic(transforms.conversion_funnel, FUNNEL_COLUMNS, ("window_start",)),
}


def start_analytic(
    name: str, parsed: DataFrame, settings: Settings, trigger_seconds: int
) -> StreamingQuery:
    """Valid, de-duplicated events -> the analytic -> its Delta table and output topic."""
    analytic = ANALYTICS[name]
    events = transforms.valid_events(parsed)
    if not analytic.deduplicates:
        events = transforms.deduplicate(events, settings.analytics.watermark_seconds)
    sink = BatchSink(
        query=name,
        checkpoint=settings.checkpoint_path(name),
        table=settings.table_path(name),
        table_columns=analytic.columns,
        kafka_records=lambda df: transforms.to_kafka_records(df, analytic.key_columns),
        topic=settings.output_topic(name),
        kafka_options=settings.spark_kafka_options(),
    )
    return start_query(analytic.transform(events, settings.analytics), name, sink, trigger_seconds)


def start_dead_letters(
    parsed: DataFrame, settings: Settings, trigger_seconds: int
) -> StreamingQuery:
    # Nothing below the size limit is ever truncated in the dead-letter message.
    result = transforms.dead_letters(parsed, max_raw_bytes=settings.events.max_event_bytes)
    sink = BatchSink(
        query=DEAD_LETTER_QUERY,
        checkpoint=settings.checkpoint_path(DEAD_LETTER_QUERY),
        table=settings.table_path(DEAD_LETTER_QUERY),
        table_columns=transforms.QUARANTINE_COLUMNS,
        kafka_records=lambda df: df.select("key", "value"),
        topic=settings.kafka.dead_letter_topic,
        kafka_options=settings.spark_kafka_options(),
    )
    return start_query(result, DEAD_LETTER_QUERY, sink, trigger_seconds)


QUERY_STARTERS: dict[str, Callable[[DataFrame, Settings, int], StreamingQuery]] = {
    **{name: partial(start_analytic, name) for name in ANALYTICS},
    DEAD_LETTER_QUERY: start_dead_letters,
}


# ---------------------------------------------------------------- progress


def _offsets_behind(end: Any, latest: Any) -> int | None:
    """Sum over partitions of latest - end for Kafka-style ``{topic: {partition: n}}``."""
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    behind = 0
    for topic, partitions in latest.items():
        done = end.get(topic, {})
        if not isinstance(partitions, dict) or not isinstance(done, dict):
            return None
        for partition, offset in partitions.items():
            # A partition the batch has not seen yet (added since) is behind by all of it.
            behind += max(0, int(offset) - int(done.get(partition, 0)))
    return behind


def progress_record(progress: dict[str, Any]) -> dict[str, Any]:
    """The fields of a StreamingQueryProgress (as JSON) the supervisor and UI read."""
    duration = progress.get("durationMs") or {}
    return {
        "name": progress.get("name"),
        "id": progress.get("id"),
        "runId": progress.get("runId"),
        "batchId": progress.get("batchId"),
        "timestamp": progress.get("timestamp"),
        "numInputRows": progress.get("numInputRows"),
        "inputRowsPerSecond": progress.get("inputRowsPerSecond"),
        "processedRowsPerSecond": progress.get("processedRowsPerSecond"),
        "batchDurationMs": progress.get("batchDuration", duration.get("triggerExecution")),
        "durationMs": duration,
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        "sources": [
            {
                "description": source.get("description"),
                "endOffset": source.get("endOffset"),
                "latestOffset": source.get("latestOffset"),
                "offsetsBehindLatest": _offsets_behind(
                    source.get("endOffset"), source.get("latestOffset")
                ),
                "numInputRows": source.get("numInputRows"),
                # The Kafka source reports min/avg/maxOffsetsBehindLatest here.
                "metrics": source.get("metrics") or {},
            }
            for source in progress.get("sources") or []
        ],
        # Events later than the watermark, over all stateful operators: counted, not lost
        # silently (they are also in the source topic for a backfill to pick up).
        "rowsDroppedByWatermark": sum(
            op.get("numRowsDroppedByWatermark") or 0 for op in progress.get("stateOperators") or []
        ),
        "stateRowsTotal": sum(
            op.get("numRowsTotal") or 0 for op in progress.get("stateOperators") or []
        ),
        "stateOperators": [
            {
                "operatorName": op.get("operatorName"),
                "numRowsTotal": op.get("numRowsTotal"),
                "memoryUsedBytes": op.get("memoryUsedBytes"),
                "numRowsDroppedByWatermark": op.get("numRowsDroppedByWatermark"),
                # Where a batch's state time goes (benchmarks/breakdown.py reads these).
                "commitTimeMs": op.get("commitTimeMs"),
                "allUpdatesTimeMs": op.get("allUpdatesTimeMs"),
                "allRemovalsTimeMs": op.get("allRemovalsTimeMs"),
                "customMetrics": op.get("customMetrics") or {},
            }
            for op in progress.get("stateOperators") or []
        ],
    }


class ProgressRecorder(StreamingQueryListener):
    """Appends one JSON line per progress event; logs starts and terminations."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def onQueryStarted(self, event: Any) -> None:
        name = event.name or str(event.id)
        self._names[str(event.id)] = name
        log.info("query %s is running (id %s, run %s)", name, event.id, event.runId)

    def onQueryProgress(self, event: Any) -> None:
        try:
            line = json.dumps(progress_record(json.loads(event.progress.json)))
            with self._lock, open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except Exception:
            # A metrics hiccup (disk full, odd JSON) must not disturb the query.
            log.exception("could not record streaming progress in %s", self.path)

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        name = self._names.get(str(event.id), str(event.id))
        if event.exception:
            log.error("query %s terminated with an error: %s", name, error_summary(event.exception))
        else:
            log.info("query %s terminated", name)


# ---------------------------------------------------------------- running


def error_summary(error: object) -> str:
    """One line for the log: the first line of the error and, when the JVM reported one,
    the innermost ``...Exception: ...``/``...Error: ...`` line (the root cause)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return repr(error)
    text = error_text(error)
    causes = re.findall(r"^(?:: |Caused by: )?([\w.$]+(?:Exception|Error)\b.*)$", text, re.M)
    if causes and causes[-1] != lines[0]:
        return f"{lines[0]} (cause: {causes[-1]})"
    return lines[0]


def last_batch_id(query: StreamingQuery) -> int:
    """The id of the query's last finished micro-batch in this run (-1: none yet)."""
    progress = query.lastProgress
    return -1 if progress is None else int(progress["batchId"])


def stop_gracefully(
    queries: Sequence[StreamingQuery], timeout: float = GRACEFUL_STOP_TIMEOUT_SECONDS
) -> None:
    """Stop every query as soon as the micro-batch it is running has finished.

    The queries are watched together, so the wait is the longest running batch, not the
    sum.  A query that is behind starts its next batch the moment one ends, so it is
    rarely seen idle: its boundary is the end of the batch that was running when the stop
    was asked (a newer batch id).  A batch Spark may have planned in that instant is
    interrupted and replayed on the next start (once in Delta, at least once on Kafka,
    as after any crash).  After `timeout`, a batch still running is interrupted.
    """
    running = {q: last_batch_id(q) for q in queries if q.isActive}
    deadline = time.monotonic() + timeout
    while running:
        for query, batch_at_request in list(running.items()):
            busy = query.isActive and query.status.get("isTriggerActive")
            if busy and last_batch_id(query) == batch_at_request:
                continue
            if query.isActive:
                query.stop()
            log.info("stopped query %s after batch %d", query.name, last_batch_id(query))
            del running[query]
        if running and time.monotonic() >= deadline:
            for query in running:
                log.warning(
                    "query %s still busy after %.0f s; interrupting it", query.name, timeout
                )
                query.stop()
            break
        time.sleep(STOP_POLL_SECONDS)


# What a batch that the stop cut short fails with.  Spark stops a query by cancelling its
# jobs and interrupting its thread, and hides the errors that causes, except where a
# library turns the interrupt into its own error (Hadoop's shell, the Kafka producer,
# Delta, a Python foreachBatch): then the stopped query reports a failure.
STOP_INTERRUPTION = re.compile(
    r"Interrupt(ed)?(Exception|IOException)?\b|ClosedByInterrupt|cancell?ed|"
    r"SparkContext (was|has been) shut ?down",
    re.IGNORECASE,
)


def error_text(error: object) -> str:
    """An error's messages and those of its causes, without stack frames or the query's
    description. pyspark's StreamingQueryException can say just "null" (a JVM exception
    without a message): its causes are in ``_cause``, and each cause's JVM trace, with
    its "Caused by:" lines, in ``_stackTrace``."""
    parts: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for text in (str(error), getattr(error, "_stackTrace", None)):
            if text:
                text = str(text).split("=== Streaming Query ===", 1)[0]
                parts += [ln for ln in text.splitlines() if not ln.strip().startswith("at ")]
        error = getattr(error, "_cause", None) or getattr(error, "__cause__", None)
    return "\n".join(parts)


def interrupted_by_stop(error: object) -> bool:
    """Whether a query's error is its last batch being cut short by our own stop."""
    return STOP_INTERRUPTION.search(error_text(error)) is not None


# What Spark says when a query no longer fits its checkpoint (changed aggregation, state
# schema, operators, sources).
INCOMPATIBLE_CHECKPOINT = re.compile(
    r"STATE_STORE_\w*(SCHEMA|MISMATCH|INCOMPATIBLE)|StateSchemaNotCompatible|"
    r"schema for existing state|not compatible with|number of stateful operators|"
    r"STREAMING_STATEFUL_OPERATOR_NOT_MATCH_IN_STATE_METADATA|different.*checkpoint",
    re.IGNORECASE,
)


def checkpoint_hint(query: str, error: object) -> str | None:
    """Plain words and the exact command when Spark refused a query's checkpoint."""
    if not INCOMPATIBLE_CHECKPOINT.search(str(error)):
        return None
    return (
        f"query {query} cannot continue from its checkpoint: Spark refuses it, most likely "
        "because the query's code or config changed. Nothing was deleted. To start it "
        f"afresh on purpose, run `{checkpoints.relocate_command(query)}`: it moves the "
        "checkpoint and the table aside together, and the query rebuilds them from the "
        "earliest offset Kafka still holds. Backups taken before the change are under "
        f"{checkpoints.BACKUP_DIR}/ next to the checkpoint."
    )


def check_checkpoints(settings: Settings, queries: Sequence[str]) -> str | None:
    """Refusal message when a checkpoint is damaged; backs up any that code or config
    changes are about to resume."""
    damaged = []
    for name in queries:
        path = settings.checkpoint_path(name)
        report = checkpoints.inspect(path)
        if not report.healthy:
            damaged.append(f"{name} ({path}): {'; '.join(report.problems)}")
    if not damaged:
        current = checkpoints.fingerprint(settings)
        for name in queries:
            checkpoints.backup_if_changed(settings.checkpoint_path(name), current)
        return None
    return (
        "checkpoints look damaged, nothing was changed: "
        + " | ".join(damaged)
        + ". Inspect them with `.venv/bin/python -m include.checkpoints check`; start a query "
        f"afresh on purpose with `{checkpoints.relocate_command('<query>')}`."
    )


def supervise(
    queries: Sequence[StreamingQuery],
    stop_file: Path | None,
    await_seconds: float | None,
    stop_requested: threading.Event,
) -> int:
    """Wait for a stop request or a failure; return the process exit code."""
    deadline = None if await_seconds is None else time.monotonic() + await_seconds
    while True:
        ended = [q for q in queries if not q.isActive]
        if ended:
            break
        if stop_file is not None and stop_file.exists():
            log.info("stop file %s appeared; stopping after the current batches", stop_file)
            break
        if deadline is not None and time.monotonic() >= deadline:
            log.info("ran for %s s as asked; stopping after the current batches", await_seconds)
            break
        if stop_requested.is_set():
            log.info("stop signal received; stopping after the current batches")
            break
        stop_requested.wait(POLL_SECONDS)

    stop_gracefully(queries)

    code = 0
    for query in queries:
        # A query can also fail while it is being stopped (its last batch).
        error = query.exception()
        if error is not None and query not in ended and interrupted_by_stop(error):
            # Like a crash at that point: nothing of the batch is committed, and the next
            # start replays it (once in Delta, at least once on Kafka).
            log.warning(
                "query %s: the stop cut short the batch after %d, which Spark had just "
                "started; the next start runs it again (%s)",
                query.name,
                last_batch_id(query),
                error_summary(error),
            )
        elif error is not None:
            log.error("query %s failed: %s", query.name, error_summary(error))
            print(f"query {query.name} failed: {error}", file=sys.stderr)
            if hint := checkpoint_hint(query.name, error):
                log.error("%s", hint)
                print(hint, file=sys.stderr)
            code = 1
        elif query in ended:
            log.error("query %s stopped although no stop was requested", query.name)
            print(f"query {query.name} stopped unexpectedly", file=sys.stderr)
            code = 1
    return code


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="streaming_app",
        description="Kafka -> validation -> analytics -> Delta + Kafka, with Spark streaming.",
    )
    parser.add_argument(
        "--queries",
        default=DEFAULT_QUERIES,
        help=f"comma-separated queries to run, from: {', '.join(QUERY_STARTERS)} "
        f"(default: {DEFAULT_QUERIES})",
    )
    parser.add_argument(
        "--starting-offsets",
        default="earliest",
        help="where a query without a checkpoint starts: earliest, latest or Kafka's JSON "
        "offsets (a checkpoint always wins)",
    )
    parser.add_argument(
        "--trigger-seconds",
        type=int,
        default=settings.spark.trigger_seconds,
        help="micro-batch interval (default: %(default)s)",
    )
    parser.add_argument(
        "--max-offsets-per-trigger",
        type=int,
        default=settings.spark.max_offsets_per_trigger,
        help="cap on Kafka records per micro-batch (default: %(default)s)",
    )
    parser.add_argument(
        "--await-seconds",
        type=float,
        default=None,
        help="stop gracefully after this many seconds (tests); default: run until stopped",
    )
    parser.add_argument(
        "--stop-file",
        type=Path,
        default=None,
        help="stop gracefully once this file exists (a stale one is removed at start)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.queries.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUERY_STARTERS]
    if not names or unknown:
        parser.error(
            f"unknown query {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(QUERY_STARTERS)}"
        )
    args.queries = list(dict.fromkeys(names))
    if args.trigger_seconds < 1 or args.max_offsets_per_trigger < 1:
        parser.error("--trigger-seconds and --max-offsets-per-trigger must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # py4j logs every callback (foreachBatch, listener) at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    settings = get_settings()
    args = parse_args(argv, settings)

    lease = DriverLease({name: settings.checkpoint_path(name) for name in args.queries})
    try:
        lease.acquire()
    except CheckpointInUse as error:
        log.error("%s", error)
        print(f"streaming application refused to start: {error}", file=sys.stderr)
        return EXIT_CHECKPOINT_IN_USE
    try:
        if refusal := check_checkpoints(settings, args.queries):
            log.error("%s", refusal)
            print(f"streaming application refused to start: {refusal}", file=sys.stderr)
            return EXIT_CHECKPOINT_DAMAGED
        return run(settings, args)
    finally:
        lease.release()


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the queries and supervise them until a stop or a failure; the exit code."""
    if args.stop_file is not None and args.stop_file.exists():
        # Left over from the previous run's stop: honouring it would stop us at once.
        log.info("removing stale stop file %s", args.stop_file)
        args.stop_file.unlink()

    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())

    log.info(
        "starting Spark for queries %s: input topic %s on %s, state in %s",
        ", ".join(args.queries),
        settings.kafka.input_topic,
        settings.bootstrap_servers,
        settings.state,
    )
    spark = build_session(settings)
    queries: list[StreamingQuery] = []
    try:
        spark.streams.addListener(ProgressRecorder(progress_path(settings.metrics_dir)))
        parsed = transforms.parse_events(
            read_events(spark, settings, args.starting_offsets, args.max_offsets_per_trigger),
            settings.events,
        )
        for name in args.queries:
            queries.append(QUERY_STARTERS[name](parsed, settings, args.trigger_seconds))
        code = supervise(queries, args.stop_file, args.await_seconds, stop_requested)
    except Exception as error:
        log.exception("the streaming application failed")
        print(f"streaming application failed: {error}", file=sys.stderr)
        for query in queries:
            if query.isActive:
                query.stop()
        code = 1
    finally:
        spark.stop()
    log.info("streaming application exits with code %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
