"""A quick side by side of the one query and the six-query design it replaced, on a broker of
its own: the application's CPU at a steady rate, and events/s from a preloaded backlog.
Minutes, not `make bench`'s hour and a half: README's "The one query, first figures" were
measured this way.

    .venv/bin/python -m benchmarks.side_by_side rest [--rate 50] [--trigger 10] \\
        [--warm 90] [--seconds 90]
    .venv/bin/python -m benchmarks.side_by_side backlog [--events 200000]

Each design runs in a state dir of its own, one after the other, on the same broker.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.cpu import cpu_seconds
from benchmarks.designs import DESIGN_APP, epoch, preload
from benchmarks.threads import Reading, split
from include.analytics import PIPELINE, QUERIES
from include.kafka.topics import provision
from include.producer import ProducerParams, run_producer
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.progress import read_progress

# (label, application, its arguments, the progress names it reports)
DESIGNS = (
    ("six queries (before)", DESIGN_APP, ("--design", "independent"), QUERIES),
    ("one query", STREAMING_APP, (), (PIPELINE,)),
)


def settings_in(state: Path, name: str) -> Settings:
    """A design's state dir and topics of its own: the designs share the broker, and one
    design's events or control records must not reach the other."""
    os.environ.update(
        {
            "ECOM_STATE_DIR": str(state),
            "ECOM_KAFKA__INPUT_TOPIC": f"{name}-events",
            "ECOM_KAFKA__OUTPUT_TOPIC_PREFIX": f"{name}.",
            "ECOM_KAFKA__DEAD_LETTER_TOPIC": f"{name}-events-dlq",
            "ECOM_KAFKA__CONTROL_TOPIC": f"{name}-events-control",
        }
    )
    settings = Settings()
    provision(settings)
    return settings


def start(settings: Settings, app: Path, app_args: tuple[str, ...], *more: str):
    """The design's application on `settings`, stopped by the stop file in its state dir."""
    return launch_app(
        settings,
        app,
        settings.paths.log_dir / "app.log",
        *app_args,
        *more,
        "--stop-file",
        str(settings.state / "stop"),
    )


def jvm_pid(pid: int) -> int:
    """The driver's JVM under spark-submit (spark-submit is the JVM itself here)."""
    import psutil

    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return next(p.pid for p in tree if p.name() == "java")


def rest(args: argparse.Namespace, base: Path) -> None:
    for n, (label, app, app_args, _) in enumerate(DESIGNS):
        settings = settings_in(Path(tempfile.mkdtemp(prefix="rest-", dir=base)), f"rest{n}")
        stop = threading.Event()
        params = ProducerParams(rate=args.rate)
        producer = threading.Thread(
            target=run_producer,
            args=(settings.bootstrap_servers, settings.kafka.input_topic, params, stop),
            daemon=True,
        )
        producer.start()
        proc = start(settings, app, app_args, "--trigger-seconds", str(args.trigger))
        try:
            time.sleep(args.warm)
            jvm = jvm_pid(proc.pid)
            before, started = Reading.of(jvm, cpu_seconds(proc.pid)), time.time()
            time.sleep(args.seconds)
            after, ended = Reading.of(jvm, cpu_seconds(proc.pid)), time.time()
            cores = (after.total - before.total) / (ended - started)
            print(f"{label}: {cores:.2f} cores at {args.rate} events/s, trigger {args.trigger} s")
            print(f"  by kind of thread: {json.dumps(split(before, after, ended - started))}")
        finally:
            stop.set()
            (settings.state / "stop").touch()
            stop_tree(proc.pid, timeout=120)


def backlog(args: argparse.Namespace, base: Path) -> None:
    for n, (label, app, app_args, names) in enumerate(DESIGNS):
        state = Path(tempfile.mkdtemp(prefix="backlog-", dir=base))
        settings = settings_in(state, f"backlog{n}")
        preload(settings, args.events, users=10_000, span=timedelta(minutes=100))
        more = ("--trigger-seconds", "1", "--max-offsets-per-trigger", str(args.events))
        proc = start(settings, app, app_args, *more)
        try:
            finished = read_all(settings, names, args.events, proc)
        finally:
            (settings.state / "stop").touch()
            stop_tree(proc.pid, timeout=120)
        print(f"{label}: {args.events / finished:,.0f} events/s ({finished:.0f} s)")


def read_all(settings: Settings, names: tuple[str, ...], count: int, proc) -> float:
    """Seconds from the first batch's start until every query read `count` input records."""
    topic = settings.kafka.input_topic
    while proc.poll() is None:
        records = [r for r in read_progress(settings.paths.metrics_dir) if r["name"] in names]
        done = {
            r["name"]: r
            for r in records
            if sum(int(o) for o in r["sources"][0]["endOffset"].get(topic, {}).values()) >= count
        }
        if len(done) == len(names):
            first = min(epoch(r["timestamp"]) for r in records)
            return (
                max(epoch(r["timestamp"]) + r["batchDurationMs"] / 1000 for r in done.values())
                - first
            )
        time.sleep(2)
    raise RuntimeError(f"the application exited {proc.returncode}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.side_by_side", description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    at_rest = sub.add_parser("rest", help="CPU at a steady rate")
    at_rest.add_argument("--rate", type=int, default=50)
    at_rest.add_argument("--trigger", type=int, default=10)
    at_rest.add_argument("--warm", type=float, default=90)
    at_rest.add_argument("--seconds", type=float, default=90)
    from_backlog = sub.add_parser("backlog", help="events/s from a preloaded backlog")
    from_backlog.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    os.environ.update(
        {
            "ECOM_STATE_DIR": str(base / "broker"),
            "ECOM_KAFKA__PORT": str(free_port()),
            "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        }
    )
    broker = Kafka(Settings())
    broker.start()
    try:
        (rest if args.what == "rest" else backlog)(args, base)
    finally:
        broker.stop(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
