"""Which design of the streaming application is faster, measured side by side in one run.

    .venv/bin/python -m benchmarks.designs [--events 300000] [--max-offsets 50000]

1. Starts a Kafka broker of its own (free ports, state under state/bench/designs) and
   preloads N generated events once.
2. Runs, one after the other on the same events, each from the earliest offset:
   * independent: the platform's design, every analytic reads and parses the topic itself;
   * parse_once: one query parses, validates and de-duplicates into a Delta events table
     that every analytic streams from;
   * sessions alone with ``session_window`` (the platform's) and with
     ``transformWithStateInPandas`` (benchmarks/pandas_sessions.py).
3. Throughput of a run = events / (end of the last batch that had input - start of the
   first batch), from the progress records; each pair is also checked for identical rows.

Prints a table and writes the figures to state/bench/designs.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from deltalake import DeltaTable

from benchmarks.design_app import EVENTS_QUERY
from include.analytics import ANALYTIC_NAMES, USER_SESSIONS
from include.generators import EventGenerator
from include.kafka.client import producer
from include.kafka.topics import provision
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.progress import read_progress
from include.tables import read_table

log = logging.getLogger("benchmarks.designs")
DESIGN_APP = Path(__file__).with_name("design_app.py")
SESSIONS = USER_SESSIONS.name


@dataclass
class Variant:
    label: str
    app: Path
    args: tuple[str, ...]
    analytics: tuple[str, ...]


@dataclass
class Result:
    label: str
    events: int
    seconds: float
    events_per_second: float
    batches: int


VARIANTS = [
    Variant("independent", STREAMING_APP, (), ANALYTIC_NAMES),
    Variant("parse_once", DESIGN_APP, ("--design", "parse_once"), ANALYTIC_NAMES),
    Variant("sessions:session_window", STREAMING_APP, ("--outputs", SESSIONS), (SESSIONS,)),
    Variant(
        "sessions:transform_with_state",
        DESIGN_APP,
        (
            "--design",
            "independent",
            "--sessions",
            "transform_with_state",
            "--queries",
            SESSIONS,
        ),
        (SESSIONS,),
    ),
]
COMPARE = [
    ("independent", "parse_once", ANALYTIC_NAMES),
    ("sessions:session_window", "sessions:transform_with_state", [SESSIONS]),
]


def preload(settings: Settings, count: int, users: int, span: timedelta) -> None:
    """count events evenly over `span` of event time, ending now.  The span must exceed
    the 30-minute session gap, or no session closes and there is nothing to compare."""
    start = datetime.now(UTC) - span
    generator = EventGenerator(seed=2024, users=users, products=500, visits=False)
    client = producer(settings.bootstrap_servers, linger_ms=50, batch_size=1024 * 1024)
    began = time.monotonic()
    for i, event in enumerate(generator.stream(start, span / count, count), 1):
        client.send(
            settings.kafka.input_topic,
            key=event["user_id"].encode(),
            value=json.dumps(event).encode(),
        )
        if i % 100_000 == 0:
            log.info("preloaded %d of %d events", i, count)
    client.flush()
    client.close()
    log.info("preloaded %d events in %.0f s", count, time.monotonic() - began)


def progress(state: Path) -> list[dict]:
    return read_progress(state / "metrics")


def kafka_offsets_read(record: dict, topic: str | None = None) -> int | None:
    """Offsets a Kafka-reading query has consumed up to (of `topic` alone when given: the
    pipeline also reads the idle rule's control topic), or None for another source."""
    total = None
    for source in record["sources"]:
        if source["description"].startswith("KafkaV2") and source["endOffset"]:
            total = (total or 0) + sum(
                int(o)
                for name, parts in source["endOffset"].items()
                if topic is None or name == topic
                for o in parts.values()
            )
    return total


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def batches_with_events(records: list[dict], topic: str | None) -> list[dict]:
    """The progress records of the batches that read events: records of the input `topic`
    when given (its offsets moved on since the query's previous batch), not only the idle
    rule's control records, which move event time once the input has been silent."""
    if topic is None:
        return [r for r in records if r["numInputRows"]]
    found, done = [], {}
    for record in sorted(records, key=lambda r: (r["name"], r["batchId"])):
        read = kafka_offsets_read(record, topic) or 0
        if read > done.get(record["name"], 0):
            found.append(record)
            done[record["name"]] = read
    return found


def measure(label: str, state: Path, count: int, topic: str | None = None) -> Result:
    """Throughput of a finished run, from its progress records: from its first batch to the
    end of the last that read events (of `topic`: the batches that only carried the idle
    rule's control records, once every event was read, are not the events' time)."""
    records = progress(state)
    with_input = batches_with_events(records, topic)
    began = min(epoch(r["timestamp"]) for r in records)
    ended = max(epoch(r["timestamp"]) + r["batchDurationMs"] / 1000 for r in with_input)
    seconds = ended - began
    batches = len({(r["name"], r["batchId"]) for r in with_input})
    result = Result(label, count, round(seconds, 1), round(count / seconds), batches)
    log.info(
        "%s: %d events in %.1f s = %d events/s", label, count, seconds, result.events_per_second
    )
    return result


def run_variant(variant: Variant, base: Path, env: dict[str, str], count: int, args) -> Result:
    state = base / variant.label.replace(":", "_")
    shutil.rmtree(state, ignore_errors=True)
    stop_file = state / "stop"
    variant_env = {**env, "ECOM_STATE_DIR": str(state)}
    settings = Settings(state_dir=state)
    log.info("running %s on %d events", variant.label, count)
    proc = launch_app(
        settings,
        variant.app,
        state / "app.log",
        *variant.args,
        "--max-offsets-per-trigger",
        str(args.max_offsets),
        "--trigger-seconds",
        "1",
        "--stop-file",
        str(stop_file),
        env=variant_env,
        master="local[2]",
        driver_memory=args.driver_memory,
    )
    # The run's own input topic: `env` may name another than this process's settings.
    topic = env.get("ECOM_KAFKA__INPUT_TOPIC", settings.kafka.input_topic)
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{variant.label} exited {proc.returncode}; see {state}/app.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant.label} did not finish in {args.timeout} s")
            records = progress(state)
            events_table = state / "tables" / EVENTS_QUERY
            done = [
                a for a in variant.analytics if consumed_all(records, a, count, events_table, topic)
            ]
            if len(done) == len(variant.analytics):
                break
            time.sleep(2)
        stop_file.touch()
        proc.wait(180)
    finally:
        if proc.poll() is None:
            stop_tree(proc.pid)
    return measure(variant.label, state, count, topic)


def delta_version_read(record: dict) -> int | None:
    """The last events-table version a Delta-reading batch has fully read, else None.

    A Delta source offset (v, -1) points before version v's first file: v - 1 is done.
    """
    for source in record["sources"]:
        offset = source["endOffset"]
        if isinstance(offset, dict) and "reservoirVersion" in offset:
            done = offset["reservoirVersion"]
            return done - 1 if offset.get("index", -1) == -1 else done
    return None


def consumed_all(
    records: list[dict], name: str, count: int, events_table: Path, topic: str
) -> bool:
    """Whether query `name` has read every event: all of the input topic's offsets or,
    reading the Delta events table, every version written by the time the events query had
    read Kafka's."""
    mine = [r for r in records if r["name"] == name]
    if any(kafka_offsets_read(r, topic) == count for r in mine):
        return True
    if not any(kafka_offsets_read(r, topic) == count for r in records if r["name"] == EVENTS_QUERY):
        return False
    last_version = DeltaTable(str(events_table)).version()
    return any((delta_version_read(r) or -1) >= last_version for r in mine)


def same_rows(base: Path, left: str, right: str, analytic: str) -> bool:
    frames = []
    for label in (left, right):
        frame = read_table(base / label.replace(":", "_") / "tables" / analytic)
        frame = pd.DataFrame() if frame is None else frame
        # Arrays (products_purchased) are not sortable; as tuples they are.
        frame = frame.map(
            lambda v: tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v
        )
        frames.append(frame.sort_values(list(frame.columns), ignore_index=True))
    return len(frames[0]) > 0 and frames[0].equals(frames[1])


# The input topic of `python -m benchmarks.designs`' own broker.
BENCH_TOPIC = "bench-events"


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.designs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--span-minutes", type=float, default=120, help="event time covered")
    parser.add_argument("--max-offsets", type=int, default=50_000)
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--variants",
        default=",".join(v.label for v in VARIANTS),
        help="comma-separated subset of: %(default)s",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "state" / "bench" / "designs")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="report on the runs already in --out instead of running again",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)

    base = args.out.resolve()
    wanted = set(args.variants.split(","))
    if args.reuse:
        results = [
            measure(v.label, base / v.label.replace(":", "_"), args.events, BENCH_TOPIC)
            for v in VARIANTS
            if v.label in wanted
        ]
        return report(args, base, wanted, results)
    shutil.rmtree(base, ignore_errors=True)
    env = {
        "ECOM_KAFKA__PORT": str(free_port()),
        "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        "ECOM_KAFKA__INPUT_TOPIC": BENCH_TOPIC,
    }
    os.environ.update(env)
    settings = Settings(state_dir=base / "broker")
    broker = Kafka(settings)
    broker.start()
    try:
        provision(settings)
        preload(settings, args.events, args.users, timedelta(minutes=args.span_minutes))
        results = [
            run_variant(v, base, env, args.events, args) for v in VARIANTS if v.label in wanted
        ]
    finally:
        broker.stop(timeout=30)
    return report(args, base, wanted, results)


def report(args: argparse.Namespace, base: Path, wanted: set[str], results: list[Result]) -> int:
    """Print the table, the ratios and the row checks; write designs.json."""
    checks = {
        f"{left} = {right}: {analytic}": same_rows(base, left, right, analytic)
        for left, right, analytics in COMPARE
        if {left, right} <= wanted
        for analytic in analytics
    }
    by_label = {r.label: r for r in results}
    print(
        f"\n{args.events} events over {args.span_minutes:g} minutes of event time, "
        f"{args.max_offsets} per micro-batch, local[2]\n"
    )
    print(f"{'design':28}{'seconds':>10}{'events/s':>12}{'batches':>9}")
    for r in results:
        print(f"{r.label:28}{r.seconds:>10}{r.events_per_second:>12}{r.batches:>9}")
    ratios = {
        f"{right} / {left}": by_label[right].events_per_second / by_label[left].events_per_second
        for left, right, _ in COMPARE
        if left in by_label and right in by_label
    }
    for name, ratio in ratios.items():
        print(f"throughput ratio {name}: {ratio:.2f}")
    for name, same in checks.items():
        print(f"identical rows, {name}: {'yes' if same else 'NO'}")
    (base / "designs.json").write_text(
        json.dumps(
            {"results": [asdict(r) for r in results], "ratios": ratios, "identical": checks},
            indent=2,
        )
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
