"""The six-query design, kept as the benchmarks' before row (benchmarks/design_app.py
``--design independent``): one streaming query per output, each reading and parsing the topic
itself, each micro-batch appended to its Delta table by Spark (``txnAppId``/``txnVersion``)
and then written to its topic by Spark's Kafka sink, at least once.

:data:`QUERY_STARTERS` starts any query by name.  The platform runs spark_jobs/pipeline.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql.streaming import StreamingQuery

from include.analytics import ANALYTICS, DEAD_LETTERS, Analytic
from include.kafka.security import spark_kafka_options
from include.settings import Settings
from spark_jobs import transforms, validation
from spark_jobs.output_topics import to_kafka_records
from spark_jobs.sinks import checkpoint_query_id, job_name

# Every line the driver logs carries the application's name (tests and users grep it).
log = logging.getLogger("streaming_app")


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
    kafka_options: Mapping[
        str, str
    ]  # brokers and security: include.kafka.security.spark_kafka_options

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
    """Start ``result`` as an append-mode query that hands each micro-batch to ``sink``."""
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


def start_analytic(
    analytic: Analytic, parsed: DataFrame, settings: Settings, trigger_seconds: int
) -> StreamingQuery:
    """Valid events -> the analytic -> its Delta table and output topic."""
    valid = transforms.with_watermark(
        validation.valid_events(parsed), settings.analytics.watermark_seconds
    )
    rows = transforms.analytic_rows(analytic, valid, settings.analytics)
    return start_query(rows, analytic.name, analytic_sink(analytic, settings), trigger_seconds)


def analytic_sink(analytic: Analytic, settings: Settings) -> BatchSink:
    """An analytic's sink: its checkpoint, its table, and its topic keyed by its keys."""
    return BatchSink(
        query=analytic.name,
        checkpoint=settings.paths.checkpoint_path(analytic.name),
        table=settings.paths.table_path(analytic.name),
        table_columns=analytic.columns,
        kafka_records=lambda df: to_kafka_records(df, analytic.keys),
        topic=settings.output_topic(analytic.name),
        kafka_options=spark_kafka_options(settings),
    )


def start_dead_letters(
    parsed: DataFrame, settings: Settings, trigger_seconds: int
) -> StreamingQuery:
    """Records that failed validation -> the quarantine table and the dead-letter topic."""
    # Nothing below the size limit is ever truncated in the dead-letter message.
    result = validation.dead_letters(parsed, max_raw_bytes=settings.events.max_event_bytes)
    sink = BatchSink(
        query=DEAD_LETTERS.name,
        checkpoint=settings.paths.checkpoint_path(DEAD_LETTERS.name),
        table=settings.paths.table_path(DEAD_LETTERS.name),
        table_columns=DEAD_LETTERS.columns,
        kafka_records=lambda df: df.select("key", "value"),
        topic=settings.kafka.dead_letter_topic,
        kafka_options=spark_kafka_options(settings),
    )
    return start_query(result, DEAD_LETTERS.name, sink, trigger_seconds)


# Every query the app can run, by name, in the order of include.analytics.QUERIES.
QUERY_STARTERS: dict[str, Callable[[DataFrame, Settings, int], StreamingQuery]] = {
    **{analytic.name: partial(start_analytic, analytic) for analytic in ANALYTICS},
    DEAD_LETTERS.name: start_dead_letters,
}
