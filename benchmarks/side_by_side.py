"""A quick side by side on a broker of its own: the one query and the six-query design it
replaced, or the one query with and without Spark's event log (the History Server's,
include.runtime.spark_history); the application's CPU at a steady rate, or events/s from a
preloaded backlog.  Minutes, not `make bench`'s hour and a half: README's "The one query,
first figures" were measured this way.

    .venv/bin/python -m benchmarks.side_by_side rest [--rate 50] [--trigger 10] \\
        [--warm 90] [--seconds 90] [--rounds 1] [--discard 0]
    .venv/bin/python -m benchmarks.side_by_side backlog [--events 200000] [--rounds 1] \\
        [--discard 0]
    .venv/bin/python -m benchmarks.side_by_side eventlog [--events 200000] [--rounds 2] \\
        [--discard 1] [--cpu [--rate 50] [--trigger 10] [--warm 90] [--seconds 90]]

Each run has a state dir and topics of its own, one after the other on the same broker; the
backlog is preloaded once and read by every run.  With --rounds the two variants take turns
(A/B/A/B), so a shared machine's slow minutes fall on both, and the second's figure over the
first's is given round by round; --discard N runs of the first variant go before, in round
0, not counted (a new broker's and cold caches' first run can be the slowest by far).

`eventlog` runs the one query with the event log on (the platform's default) and off
(``spark.eventLog.enabled=false`` through ``[spark] conf``), 2 rounds after 1 uncounted run
unless told: events/s (with --cpu, CPU at a steady rate) and the event log's bytes on disk
per 100k events read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from statistics import mean
from typing import NamedTuple

from benchmarks.cpu import cpu_seconds
from benchmarks.designs import DESIGN_APP, epoch, kafka_offsets_read, preload
from benchmarks.threads import Reading, split
from include.analytics import PIPELINE, QUERIES
from include.kafka.topics import provision
from include.producer import ProducerParams, run_producer
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.progress import read_progress


class Variant(NamedTuple):
    """What a run runs: the application, its arguments, the progress names it reports and
    Spark settings of its own (``[spark] conf``, given to the driver as ECOM_SPARK__CONF)."""

    label: str
    app: Path
    args: tuple[str, ...]
    names: tuple[str, ...]
    conf: dict[str, str] | None = None

    def event_log(self) -> bool:
        """Whether its driver writes Spark's event log (on unless its conf turns it off)."""
        return (self.conf or {}).get("spark.eventLog.enabled", "true") != "false"


DESIGNS = (
    Variant("six queries (before)", DESIGN_APP, ("--design", "independent"), QUERIES),
    Variant("one query", STREAMING_APP, (), (PIPELINE,)),
)
# The one query with the event log on (as the platform runs it, said explicitly so that one
# run's ECOM_SPARK__CONF does not carry over to the next) and off.
EVENT_LOG = tuple(
    Variant(f"event log {state}", STREAMING_APP, (), (PIPELINE,), {"spark.eventLog.enabled": on})
    for state, on in (("on", "true"), ("off", "false"))
)


def settings_in(
    state: Path, name: str, conf: dict[str, str] | None = None, input_topic: str = ""
) -> Settings:
    """A run's state dir and topics of its own: the runs share the broker, and one run's
    events or control records must not reach another's, but for the input topic when given
    (a backlog every run reads).  `conf`: the run's ``[spark] conf``."""
    os.environ.update(
        {
            "ECOM_STATE_DIR": str(state),
            "ECOM_KAFKA__INPUT_TOPIC": input_topic or f"{name}-events",
            "ECOM_KAFKA__OUTPUT_TOPIC_PREFIX": f"{name}.",
            "ECOM_KAFKA__DEAD_LETTER_TOPIC": f"{name}-events-dlq",
            "ECOM_KAFKA__CONTROL_TOPIC": f"{name}-events-control",
            **({"ECOM_SPARK__CONF": json.dumps(conf)} if conf is not None else {}),
        }
    )
    settings = Settings()
    provision(settings)
    return settings


def start(settings: Settings, app: Path, app_args: tuple[str, ...], *more: str):
    """The run's application on `settings`, stopped by the stop file in its state dir."""
    return launch_app(
        settings,
        app,
        settings.paths.log_dir / "app.log",
        *app_args,
        *more,
        "--stop-file",
        str(settings.state / "stop"),
    )


@contextmanager
def running(settings: Settings, variant: Variant, *more: str) -> Iterator:
    """The variant's application on `settings` while the block runs; then stopped at a
    batch boundary by its stop file (its event log closed), else after a minute killed."""
    proc = start(settings, variant.app, variant.args, *more)
    try:
        yield proc
    finally:
        (settings.state / "stop").touch()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        stop_tree(proc.pid, timeout=120)


def turns(
    variants: tuple[Variant, ...], args: argparse.Namespace
) -> Iterator[tuple[int, int, Variant]]:
    """(run number, round, variant): `args.discard` runs of the first variant in round 0,
    not counted, then every variant once a round, in turn (A/B/A/B)."""
    runs = [(0, variants[0])] * args.discard
    runs += [(r, v) for r in range(1, args.rounds + 1) for v in variants]
    return ((n, r, v) for n, (r, v) in enumerate(runs))


def jvm_pid(pid: int) -> int:
    """The driver's JVM under spark-submit (spark-submit is the JVM itself here)."""
    import psutil

    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return next(p.pid for p in tree if p.name() == "java")


# A run's figure (events/s or cores), its event logs' bytes on disk and the events it read.
Run = tuple[float, int, int]


def noted(
    figures: dict[str, list[Run]], round_: int, variant: Variant, settings: Settings, value: float
) -> str:
    """Add a finished run to `figures` (but round 0's, not counted) with the bytes of its
    event logs, checking that a driver told to write one did (or, told not to, did not);
    those bytes and the events read in words."""
    logs = list(settings.paths.spark_events_dir.glob("*"))
    if variant.conf is not None and bool(logs) != variant.event_log():
        found = ", ".join(p.name for p in logs) or "nothing"
        raise RuntimeError(f"{variant.label}: {settings.paths.spark_events_dir} holds {found}")
    written = sum(f.stat().st_size for p in logs for f in (p.rglob("*") if p.is_dir() else [p]))
    topic = settings.kafka.input_topic
    records = read_progress(settings.paths.metrics_dir)
    read = max((kafka_offsets_read(r, topic) or 0 for r in records), default=0)
    if round_:
        figures.setdefault(variant.label, []).append((value, written, read))
    return f"event log {written / 1024:,.0f} KiB, {read:,} events read"


def rest(args: argparse.Namespace, base: Path, variants: tuple[Variant, ...]) -> None:
    figures: dict[str, list[Run]] = {}
    for n, round_, variant in turns(variants, args):
        state = Path(tempfile.mkdtemp(prefix="rest-", dir=base))
        settings = settings_in(state, f"rest{n}", variant.conf)
        stop = threading.Event()
        params = ProducerParams(rate=args.rate)
        producer = threading.Thread(
            target=run_producer,
            args=(settings.bootstrap_servers, settings.kafka.input_topic, params, stop),
            daemon=True,
        )
        producer.start()
        try:
            with running(settings, variant, "--trigger-seconds", str(args.trigger)) as proc:
                time.sleep(args.warm)
                jvm = jvm_pid(proc.pid)
                before, started = Reading.of(jvm, cpu_seconds(proc.pid)), time.time()
                time.sleep(args.seconds)
                after, ended = Reading.of(jvm, cpu_seconds(proc.pid)), time.time()
        finally:
            stop.set()
        cores = (after.total - before.total) / (ended - started)
        logged = noted(figures, round_, variant, settings, cores)
        print(
            f"round {round_}, {variant.label}: {cores:.2f} cores at {args.rate} events/s, "
            f"trigger {args.trigger} s; {logged}"
        )
        print(f"  by kind of thread: {json.dumps(split(before, after, ended - started))}")
    summary(figures, "cores")


def backlog(args: argparse.Namespace, base: Path, variants: tuple[Variant, ...]) -> None:
    shared = settings_in(Path(tempfile.mkdtemp(prefix="preload-", dir=base)), "backlog")
    preload(shared, args.events, users=10_000, span=timedelta(minutes=100))
    more = ("--trigger-seconds", "1", "--max-offsets-per-trigger", str(args.events))
    figures: dict[str, list[Run]] = {}
    for n, round_, variant in turns(variants, args):
        state = Path(tempfile.mkdtemp(prefix="backlog-", dir=base))
        settings = settings_in(state, f"backlog{n}", variant.conf, shared.kafka.input_topic)
        with running(settings, variant, *more) as proc:
            finished = read_all(settings, variant.names, args.events, proc)
        rate = args.events / finished
        logged = noted(figures, round_, variant, settings, rate)
        print(f"round {round_}, {variant.label}: {rate:,.0f} events/s, {finished:.0f} s; {logged}")
    summary(figures, "events/s")


def summary(figures: dict[str, list[Run]], unit: str) -> None:
    """Each variant's figure by round and on average, its event logs' bytes per 100k events
    read, and the second variant's figure over the first's: of the averages, and round by
    round (each from neighbouring runs)."""
    print()
    for label, runs in figures.items():
        values = ", ".join(f"{v:,.2f}" for v, _, _ in runs)
        per_100k = sum(w for _, w, _ in runs) * 100_000 / max(1, sum(r for _, _, r in runs))
        print(
            f"{label:16}{mean(v for v, _, _ in runs):>10,.2f} {unit} (rounds: {values}); "
            f"event log {per_100k / 1024:,.1f} KiB per 100k events"
        )
    (first, a), (second, b) = figures.items()
    ratios = ", ".join(f"{y / x:.3f}" for (x, _, _), (y, _, _) in zip(a, b, strict=False))
    overall = mean(v for v, _, _ in b) / mean(v for v, _, _ in a)
    print(f"{second} / {first}: {overall:.3f} (by round: {ratios})")


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
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.side_by_side",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="what", required=True)
    at_rate = argparse.ArgumentParser(add_help=False)
    at_rate.add_argument("--rate", type=int, default=50)
    at_rate.add_argument("--trigger", type=int, default=10)
    at_rate.add_argument("--warm", type=float, default=90)
    at_rate.add_argument("--seconds", type=float, default=90)
    read_back = argparse.ArgumentParser(add_help=False)
    read_back.add_argument("--events", type=int, default=200_000)
    for name, parents, rounds, discard, what in (
        ("rest", [at_rate], 1, 0, "the two designs' CPU at a steady rate"),
        ("backlog", [read_back], 1, 0, "the two designs' events/s from a preloaded backlog"),
        ("eventlog", [read_back, at_rate], 2, 1, "the one query with the event log on and off"),
    ):
        mode = sub.add_parser(name, parents=parents, help=what)
        mode.add_argument("--rounds", type=int, default=rounds, help="A/B turns")
        mode.add_argument(
            "--discard", type=int, default=discard, help="uncounted first runs (round 0)"
        )
    sub.choices["eventlog"].add_argument(
        "--cpu", action="store_true", help="CPU at a steady rate instead of a backlog's events/s"
    )
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
        variants = EVENT_LOG if args.what == "eventlog" else DESIGNS
        at_rest = args.what == "rest" or getattr(args, "cpu", False)
        (rest if at_rest else backlog)(args, base, variants)
    finally:
        broker.stop(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
