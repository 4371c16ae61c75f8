"""The Spark Structured Streaming application: Kafka in, Delta tables and Kafka topics out.

Usage (the streaming DAG launches it this way; PYTHONPATH must hold the project root)::

    PYTHONPATH=. spark-submit --jars <comma-separated connector jars> \\
        spark_jobs/streaming_app.py [--outputs revenue_by_category,dead_letters] \\
        [--starting-offsets earliest] [--trigger-seconds N] [--stop-file PATH]

One SparkSession (:mod:`spark_jobs.session`) reads the input topic and parses and checks
every record (:mod:`spark_jobs.validation`), and ONE streaming query, ``pipeline``
(:mod:`spark_jobs.pipeline`), computes every output asked for in ``--outputs`` (default: all
of ``include.analytics.OUTPUTS``) as a branch:

* one per analytic (``revenue_by_category``, ``high_value_users``, ``conversion_funnel``,
  ``user_sessions``, ``click_to_purchase``): valid events, de-duplicated by event_id, through
  the analytic's transform (:mod:`spark_jobs.transforms`);
* ``dead_letters``: the records that failed validation, with their reason.

Each micro-batch is one Spark job whose rows the driver writes to every Delta table and
every output topic exactly once (:mod:`spark_jobs.sinks`).  While the input is silent, the
idle rule moves event time on (:mod:`include.streaming.idle_close`, :mod:`spark_jobs.idle`).
Progress of every micro-batch, for the query and for each output, goes to
``<metrics_dir>/progress.jsonl`` (:mod:`spark_jobs.listener`).  The app refuses to start on
a checkpoint another driver holds (exit 3) or one that is damaged (exit 4); it stops
gracefully at a batch boundary when ``--stop-file`` appears, ``--await-seconds`` pass, or
SIGTERM/SIGINT arrives (exit 0), and exits 1 with the error when the query fails
(:mod:`spark_jobs.lifecycle`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    # spark-submit runs this file as a script; the project root makes `include` and
    # `spark_jobs` importable even when PYTHONPATH was forgotten.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark.sql.streaming import StreamingQuery

from include.analytics import PIPELINE, QUERIES
from include.settings import Settings, get_settings
from include.settings.base import STATE_UMASK
from include.streaming.idle_close import IdleCloser
from include.streaming.lease import CheckpointInUse, DriverLease
from include.streaming.progress import progress_path
from spark_jobs.idle import SourceTopics, start_idle_closer
from spark_jobs.lifecycle import check_checkpoints, supervise
from spark_jobs.listener import ProgressRecorder
from spark_jobs.pipeline import branch_operators, branches, outputs_in_order, union
from spark_jobs.session import build_session, read_events, trigger_options
from spark_jobs.sinks import PipelineSink, sink_topics
from spark_jobs.validation import parse_events

log = logging.getLogger("streaming_app")

DEFAULT_OUTPUTS = ",".join(QUERIES)
# Exit code when another driver holds a checkpoint (1 is a failed query).
EXIT_CHECKPOINT_IN_USE = 3
EXIT_CHECKPOINT_DAMAGED = 4


def parse_args(argv: Sequence[str] | None, settings: Settings) -> argparse.Namespace:
    """The command line, checked: ``queries`` becomes the list of names asked for, each once;
    a bad value exits with the usage error."""
    parser = argparse.ArgumentParser(
        prog="streaming_app",
        description="Kafka -> validation -> analytics -> Delta + Kafka, with Spark streaming.",
    )
    parser.add_argument(
        "--outputs",
        default=DEFAULT_OUTPUTS,
        help=f"comma-separated outputs to compute, from: {', '.join(QUERIES)} (default: all)",
    )
    parser.add_argument(
        "--starting-offsets",
        default="earliest",
        help="where a query without a checkpoint starts: earliest, latest or Kafka's JSON "
        "offsets (a checkpoint always wins)",
    )
    parser.add_argument(
        "--trigger-seconds",
        type=float,
        default=settings.spark.trigger_seconds,
        help="micro-batch interval; 0: the next batch as soon as one ends; with [spark] emit = "
        "at_once, the longest a batch with input waits (default: %(default)s)",
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
    parser.add_argument(
        "--no-idle-close",
        dest="idle_close",
        action="store_false",
        help="do not move event time on while the input is silent (include.streaming.idle_close)",
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.outputs.split(",") if n.strip()]
    unknown = [n for n in names if n not in QUERIES]
    if not names or unknown:
        parser.error(
            f"unknown output {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(QUERIES)}"
        )
    args.outputs = outputs_in_order(names)
    if args.trigger_seconds < 0 or args.max_offsets_per_trigger < 1:
        parser.error(
            "--trigger-seconds must be at least 0 and --max-offsets-per-trigger at least 1"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Take the checkpoints' leases, check the checkpoints, run the queries; the exit code of
    the module docstring."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # py4j logs every callback (foreachBatch, listener) at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # The sink writes tables from this process (delta-rs): as private as the state dir,
    # whoever launched the driver (Spark's own files follow SPARK_UMASK_CONF).
    os.umask(STATE_UMASK)
    settings = get_settings()
    args = parse_args(argv, settings)

    lease = DriverLease({PIPELINE: settings.paths.pipeline_checkpoint})
    try:
        lease.acquire()
    except CheckpointInUse as error:
        log.error("%s", error)
        print(f"streaming application refused to start: {error}", file=sys.stderr)
        return EXIT_CHECKPOINT_IN_USE
    try:
        if refusal := check_checkpoints(settings):
            log.error("%s", refusal)
            print(f"streaming application refused to start: {refusal}", file=sys.stderr)
            return EXIT_CHECKPOINT_DAMAGED
        return run(settings, args)
    finally:
        lease.release()


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the query and supervise it until a stop or a failure; the exit code."""
    if args.stop_file is not None and args.stop_file.exists():
        # Left over from the previous run's stop: honouring it would stop us at once.
        log.info("removing stale stop file %s", args.stop_file)
        args.stop_file.unlink()

    stop_requested = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_requested.set())

    log.info(
        "starting Spark for outputs %s: input topic %s on %s, state in %s",
        ", ".join(args.outputs),
        settings.kafka.input_topic,
        settings.bootstrap_servers,
        settings.state,
    )
    spark = build_session(settings)
    checkpoint = settings.paths.pipeline_checkpoint
    sink = PipelineSink(settings, args.outputs, checkpoint, sink_topics(settings, args.outputs))
    query: StreamingQuery | None = None
    idle: tuple[IdleCloser, SourceTopics] | None = None
    try:
        parsed = parse_events(
            read_events(
                spark,
                settings,
                args.starting_offsets,
                args.max_offsets_per_trigger,
                args.trigger_seconds,
            ),
            settings.events,
            settings.registry_url,
        )
        frames = branches(parsed, settings, args.outputs)
        spark.streams.addListener(
            ProgressRecorder(
                progress_path(settings.paths.metrics_dir),
                settings.maintenance.jsonl_max_bytes,
                settings.maintenance.jsonl_keep_files,
                operators=branch_operators(frames),
                sink_report=sink.report,
            )
        )
        query = (
            union(frames)
            .writeStream.queryName(PIPELINE)
            .outputMode("append")
            .option("checkpointLocation", str(checkpoint))
            .trigger(**trigger_options(settings, args.trigger_seconds))
            .foreachBatch(sink)
            .start()
        )
        log.info(
            "started query %s: outputs %s, checkpoint %s, tables under %s",
            PIPELINE,
            ", ".join(args.outputs),
            checkpoint,
            settings.paths.table_root,
        )
        if args.idle_close:
            idle = start_idle_closer(settings, query, checkpoint)
        code = supervise([query], args.stop_file, args.await_seconds, stop_requested)
    except Exception as error:
        log.exception("the streaming application failed")
        print(f"streaming application failed: {error}", file=sys.stderr)
        if query is not None and query.isActive:
            query.stop()
        code = 1
    finally:
        if idle is not None:
            closer, topics = idle
            closer.stop()
            topics.close()
        sink.close()
        spark.stop()
    log.info("streaming application exits with code %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
