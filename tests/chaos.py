"""A fault campaign: faults by the dozen on a running platform, then every row counted.

`make chaos` (``ARGS="--kills 100 ..."``) brings a platform up in a fresh state dir, the way
`make up` does, and:

1. sends events in the tutorial's format at a steady rate from a thread of its own (with a
   malformed record every ``--malformed-every`` events), so that neither Airflow nor Kafka
   restarts stop the stream;
2. injects faults one at a time, in a shuffled order, each at a random moment (a random
   pause after the platform recovered from the one before): SIGKILL of the streaming driver
   (its Python process and its JVM), SIGSTOP of the driver, a Kafka broker restart, an
   Airflow scheduler restart;
3. leaves recovery to the platform: the supervisor DAG, on its own schedule, finds the
   driver dead or frozen and starts a new streaming run.  The campaign only watches: the
   platform has recovered when every query has a live driver again and has committed a
   batch after the fault;
4. stops the stream and sends page views far enough ahead to close every window and
   session, waits until every query has read everything and emitted what that closes;
5. counts, against the independent oracle (tests/oracle.py) over the events read back from
   the input topic: rows lost, rows duplicated, rows with wrong values, rows no event
   explains; and, for the malformed records, which became exactly one dead letter with
   their reason, in the dead-letter topic and in its table.

It prints the counts and writes them as Markdown (``--report``, docs/chaos.md by default)
and JSON beside it.  Exit status 0 only when nothing was lost, duplicated or wrong and the
platform recovered from every fault.

The end-to-end test runs a short campaign (one fault of each kind) on its own platform
through `run_campaign`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from include import checkpoints
from include.analytics import ANALYTICS, CLICK_TO_PURCHASE, QUERIES
from include.driver_lease import Holder, live_holder
from include.events import TutorialEventGenerator
from include.kafka_client import end_offsets, producer, read_to_end
from include.progress import last_progress
from include.runtime.airflow import AirflowComponent
from include.runtime.airflow_api import AirflowApi
from include.runtime.cli import api_client
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port
from include.settings import PROJECT_ROOT, Settings
from tests.integration.dataset import MALFORMED, ORACLES, emitted, expected_of, normalise
from tests.integration.dataset import read_table as read_sink

# The analytics whose rows wait for the watermark (click_to_purchase emits a pair as soon as
# both events are in, and its watermark is the slower of its two sides').
WINDOWED = [a.name for a in ANALYTICS if a is not CLICK_TO_PURCHASE]
KINDS = {
    "kill": "SIGKILL of the streaming driver (Python and JVM)",
    "freeze": "SIGSTOP of the streaming driver",
    "broker": "Kafka broker restart",
    "scheduler": "Airflow scheduler restart",
}
MALFORMED_KEY = b"malformed"
RECOVERY_TIMEOUT = 900.0
DEFAULT_REPORT = PROJECT_ROOT / "docs" / "chaos.md"


def say(message: str) -> None:
    print(f"[chaos] {datetime.now(UTC):%H:%M:%S} {message}", flush=True)


@dataclass
class Plan:
    kills: int = 20
    freezes: int = 3
    broker_restarts: int = 2
    scheduler_restarts: int = 2

    def faults(self, rng: random.Random) -> list[str]:
        faults = (
            ["kill"] * self.kills
            + ["freeze"] * self.freezes
            + ["broker"] * self.broker_restarts
            + ["scheduler"] * self.scheduler_restarts
        )
        rng.shuffle(faults)
        return faults


# ---------------------------------------------------------------- the event stream


class EventStream:
    """Tutorial-format events at a steady rate, sent from a thread of its own.

    Every ``malformed_every``-th record is one of the integration data set's malformed
    records (keyed ``malformed``); where each landed (partition, offset) is kept, to find
    its dead letter again.  A send that blocks (the broker is down) does not make the
    stream burst afterwards: the rate stays steady, events carry the time they were made.
    """

    def __init__(self, settings: Settings, rate: float, seed: int, malformed_every: int) -> None:
        self.settings = settings
        self.rate = rate
        self.malformed_every = malformed_every
        self._generator = TutorialEventGenerator(seed, zone=settings.events.naive_timezone)
        self._client = producer(settings.bootstrap_servers, compression_type="snappy")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-events", daemon=True)
        self._malformed: list[tuple[object, bytes, str]] = []
        self.valid = 0
        self.undelivered = 0
        self.last_event_at: datetime | None = None

    def start(self) -> EventStream:
        self._thread.start()
        return self

    def _run(self) -> None:
        interval, due, sent = 1.0 / self.rate, time.monotonic(), 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(min(due - now, 0.05))
                continue
            sent += 1
            self._send(sent)
            due = max(due + interval, now - 1.0)

    def _send(self, number: int) -> None:
        topic = self.settings.kafka.input_topic
        if number % self.malformed_every == 0:
            raw, reason = MALFORMED[(number // self.malformed_every) % len(MALFORMED)]
            sent = self._client.send(topic, key=MALFORMED_KEY, value=raw)
            self._malformed.append((sent, raw, reason))
            return
        at = datetime.now(UTC)
        event = self._generator.event(at)
        sent = self._client.send(
            topic, key=event["user_id"].encode(), value=json.dumps(event).encode()
        )
        sent.add_errback(self._lost)
        self.valid += 1
        self.last_event_at = at

    def _lost(self, _exc: Exception) -> None:
        self.undelivered += 1

    def send_events(self, events: list[dict]) -> None:
        topic = self.settings.kafka.input_topic
        for event in events:
            self._client.send(
                topic, key=event["user_id"].encode(), value=json.dumps(event).encode()
            )
        self._client.flush(timeout=120)
        self._client.close(timeout=10)

    def stop(self) -> dict[tuple[int, int], tuple[bytes, str]]:
        """Stop sending; (partition, offset) -> (raw, reason) of every delivered malformed
        record (one that was not delivered counts as undelivered)."""
        self._stop.set()
        self._thread.join(timeout=60)
        self._client.flush(timeout=180)
        landed = {}
        for sent, raw, reason in self._malformed:
            try:
                meta = sent.get(timeout=60)
            except Exception:  # any delivery failure counts the same
                self.undelivered += 1
                continue
            landed[(meta.partition, meta.offset)] = (raw, reason)
        return landed

    def closing_events(self, settings: Settings) -> tuple[list[dict], datetime]:
        """Page views far enough past the last event to close every window and session;
        and the watermark they move the queries to."""
        a = settings.analytics
        horizon = max(
            a.session_gap_seconds,
            a.revenue_window_seconds,
            a.high_value_window_seconds,
            a.funnel_window_seconds,
        )
        ahead = horizon + a.watermark_seconds + 60
        if ahead >= settings.events.max_event_lead_seconds:
            raise SystemExit(
                f"[chaos] closing the last session needs events {ahead} s ahead of now, more "
                f"than [events] max_event_lead_seconds ({settings.events.max_event_lead_seconds}"
                "): they would be dead letters. Shorten the session gap for the campaign."
            )
        last = self.last_event_at or datetime.now(UTC)
        times = [last + timedelta(seconds=ahead + i) for i in range(3)]
        events = []
        for at in times:
            event = self._generator.event(at)
            event.update(event_type="page_view", quantity=0)
            event.pop("revenue", None)
            events.append(event)
        watermark = times[-1] - timedelta(seconds=a.watermark_seconds)
        # Spark keeps the watermark in milliseconds.
        return events, watermark.replace(microsecond=watermark.microsecond // 1000 * 1000)


# ---------------------------------------------------------------- faults


def driver(settings: Settings, timeout: float = 300.0) -> Holder:
    """The live driver holding the checkpoints (waits for one to start)."""
    checkpoint = settings.checkpoint_path("revenue_by_category")
    deadline = time.monotonic() + timeout
    while (holder := live_holder(checkpoint)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no streaming driver holds {checkpoint} after {timeout:.0f} s")
        time.sleep(1)
    return holder


def kill_driver(settings: Settings) -> tuple[str, int | None]:
    holder = driver(settings)
    python = psutil.Process(holder.pid)
    procs = [python]
    jvm = python.parent()
    if jvm is not None and "java" in jvm.name():
        procs.append(jvm)
    for proc in procs:
        proc.kill()
    return "SIGKILL to " + " and ".join(f"pid {p.pid} ({p.name()})" for p in procs), holder.pid


def freeze_driver(settings: Settings) -> tuple[str, int | None]:
    holder = driver(settings)
    os.kill(holder.pid, signal.SIGSTOP)
    return f"SIGSTOP to driver pid {holder.pid}", holder.pid


def restart_broker(settings: Settings) -> tuple[str, int | None]:
    broker = Kafka(settings)
    stopped = broker.stop()
    broker.start()
    return f"Kafka broker {stopped}, started again (pid {broker.pid()})", None


def restart_scheduler(settings: Settings) -> tuple[str, int | None]:
    scheduler = AirflowComponent("scheduler", settings)
    stopped = scheduler.stop()
    scheduler.start()
    return f"Airflow scheduler {stopped} (with its task processes), started again", None


# Each injects its fault and says what it did; the driver faults name the pid they hit.
INJECT: dict[str, Callable[[Settings], tuple[str, int | None]]] = {
    "kill": kill_driver,
    "freeze": freeze_driver,
    "broker": restart_broker,
    "scheduler": restart_scheduler,
}


def recovered_since(settings: Settings, since: float, faulted: int | None = None) -> bool:
    """Every query has a driver (not the `faulted` pid) that beat after `since` and has
    committed a batch itself: a frozen driver looks alive until its heartbeat is old, and
    woken to stop, it commits the batch it was in before the new one starts."""
    for query in QUERIES:
        path = settings.checkpoint_path(query)
        holder = live_holder(path)
        if holder is None or holder.pid == faulted or holder.heartbeat < since:
            return False
        last = checkpoints.inspect(path).last_committed
        try:
            committed = (path / "commits" / str(last)).stat().st_mtime if last is not None else 0
        except OSError:
            return False
        if committed < max(since, holder.started):
            return False
    return True


def wait_recovered(
    settings: Settings, since: float, faulted: int | None = None, timeout: float = RECOVERY_TIMEOUT
) -> float:
    """Seconds from `since` (wall clock) until the platform recovered; inf if it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if recovered_since(settings, since, faulted):
            return time.time() - since
        time.sleep(1)
    return math.inf


# ---------------------------------------------------------------- counting


def _same(a: object, b: object) -> bool:
    if isinstance(a, list | tuple | np.ndarray) or isinstance(b, list | tuple | np.ndarray):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if a is None or b is None or (pd.isna(a) and pd.isna(b)):
        return (a is None or pd.isna(a)) and (b is None or pd.isna(b))
    if isinstance(a, float | Decimal | np.floating) or isinstance(b, float | Decimal | np.floating):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _keys(frame: pd.DataFrame, order: list[str]) -> pd.Series:
    """One string per row naming its key, the same for equal keys of either side."""
    keys = pd.Series("", index=frame.index)
    for column in order:
        keys = keys + "\x1f" + frame[column].astype(str)
    return keys


def _differs(left: pd.Series, right: pd.Series) -> np.ndarray:
    """Per row: do the two values differ beyond float noise?"""
    if pd.api.types.is_numeric_dtype(left) and pd.api.types.is_numeric_dtype(right):
        a, b = left.to_numpy(dtype=float), right.to_numpy(dtype=float)
        return ~np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
    return np.array([not _same(a, b) for a, b in zip(left, right, strict=True)], dtype=bool)


@dataclass
class TableCount:
    table: str
    expected: int
    written: int
    lost: int
    duplicated: int
    wrong: int
    unexplained: int


def count_table(analytic: str, events: list[dict], watermark: datetime, settings: Settings):
    """The sink table against the oracle's rows that the watermark has closed."""
    _, order = ORACLES[analytic]
    expected = emitted(analytic, expected_of(analytic, events, settings), watermark, settings)
    expected = normalise(expected, order)
    got = read_sink(settings.table_path(analytic))
    got = normalise(got, order) if len(got) else pd.DataFrame(columns=expected.columns)
    return compare_rows(analytic, expected, got, order)


def compare_rows(
    table: str, expected: pd.DataFrame, got: pd.DataFrame, order: list[str]
) -> TableCount:
    """Count, by key (`order`): expected rows missing, keys written more than once, rows
    whose values differ, and rows with a key the oracle does not have."""
    columns = [c for c in expected.columns if c not in order]
    want = expected.assign(_key=_keys(expected, order)).drop_duplicates("_key")
    first = got.assign(_key=_keys(got, order)).drop_duplicates("_key")
    both = want.merge(first, on="_key", how="inner", suffixes=("", "_got"))
    wrong = np.zeros(len(both), dtype=bool)
    for column in columns:
        wrong |= _differs(both[column], both[f"{column}_got"])
    return TableCount(
        table=table,
        expected=len(want),
        written=len(got),
        lost=int((~want["_key"].isin(first["_key"])).sum()),
        duplicated=len(got) - len(first),
        wrong=int(wrong.sum()),
        unexplained=int((~first["_key"].isin(want["_key"])).sum()),
    )


@dataclass
class DeadLetterCount:
    malformed_sent: int
    exactly_once: int
    missing: int
    duplicated: int
    wrong_reason: int
    not_malformed: int  # dead letters of records that were not malformed


def count_dead_letters(
    settings: Settings, malformed: dict[tuple[int, int], tuple[bytes, str]]
) -> DeadLetterCount:
    """Each malformed record: one message in the dead-letter topic and one table row, both
    with its reason."""
    topic = read_to_end(settings.bootstrap_servers, settings.kafka.dead_letter_topic)
    letters = [json.loads(r.value) for r in topic]
    in_topic = Counter((d["source_partition"], d["source_offset"]) for d in letters)
    reasons = {(d["source_partition"], d["source_offset"]): d["reason"] for d in letters}
    table = read_sink(settings.table_path("dead_letters"))
    in_table = Counter(
        zip(table.get("source_partition", []), table.get("source_offset", []), strict=True)
    )
    once = missing = duplicated = wrong = 0
    for where, (_, reason) in malformed.items():
        counts = (in_topic[where], in_table[where])
        if 0 in counts:
            missing += 1
        elif counts != (1, 1):
            duplicated += 1
        elif reasons[where] != reason:
            wrong += 1
        else:
            once += 1
    others = set(in_topic) | set(in_table)
    return DeadLetterCount(
        malformed_sent=len(malformed),
        exactly_once=once,
        missing=missing,
        duplicated=duplicated,
        wrong_reason=wrong,
        not_malformed=len(others - set(malformed)),
    )


# ---------------------------------------------------------------- the campaign


@dataclass
class Fault:
    number: int
    kind: str
    what: str
    at: str
    recovery_seconds: float


@dataclass
class Report:
    plan: dict
    rate: float
    supervisor_interval_seconds: int
    started: str
    finished: str = ""
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    faults: list[Fault] = field(default_factory=list)
    streaming_runs_started: int = 0
    events_sent: int = 0
    events_undelivered: int = 0
    events_in_topic: int = 0
    late_rows_counted: int = 0
    tables: list[TableCount] = field(default_factory=list)
    dead_letters: DeadLetterCount | None = None

    @property
    def recovered(self) -> list[float]:
        return [f.recovery_seconds for f in self.faults if math.isfinite(f.recovery_seconds)]

    @property
    def unrecovered(self) -> int:
        return len(self.faults) - len(self.recovered)

    def total(self, what: str) -> int:
        return sum(getattr(t, what) for t in self.tables)

    @property
    def ok(self) -> bool:
        dl = self.dead_letters
        return (
            self.unrecovered == 0
            and bool(self.tables)
            and all(self.total(w) == 0 for w in ("lost", "duplicated", "wrong", "unexplained"))
            and dl is not None
            and dl.exactly_once == dl.malformed_sent
            and dl.not_malformed == 0
        )

    def to_json(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def last_watermark(settings: Settings, query: str) -> datetime | None:
    record = last_progress(settings.metrics_dir, [query]).get(query) or {}
    mark = record.get("watermark")
    return datetime.fromisoformat(mark) if mark else None


def closed(settings: Settings, watermark: datetime) -> bool:
    """Every query has read the whole input topic, and every windowed analytic's watermark
    has reached `watermark` (the batch that emitted what it closes has finished)."""
    ends = end_offsets(settings.bootstrap_servers, settings.kafka.input_topic)
    for query in QUERIES:
        behind = checkpoints.lag(checkpoints.inspect(settings.checkpoint_path(query)), ends)
        if sum(behind.values()):
            return False
    for query in WINDOWED:
        mark = last_watermark(settings, query)
        if mark is None or mark < watermark:
            return False
    return True


def run_campaign(
    settings: Settings,
    api: AirflowApi,
    plan: Plan,
    *,
    rate: float = 50.0,
    seed: int = 1,
    max_pause: float = 20.0,
    malformed_every: int = 250,
    settle_seconds: float = 30.0,
) -> Report:
    """Faults on a running platform (streaming started), then the counts.  See the module."""
    rng = random.Random(seed)
    faults = plan.faults(rng)
    report = Report(
        plan=asdict(plan),
        rate=rate,
        supervisor_interval_seconds=settings.supervisor.interval_seconds,
        started=f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    )
    runs_before = api.run_count("streaming")
    say(f"sending tutorial-format events at {rate:g}/s; waiting for a healthy driver")
    stream = EventStream(settings, rate, seed, malformed_every).start()
    first = wait_recovered(settings, time.time())
    if not math.isfinite(first):
        raise RuntimeError("the streaming application never became healthy; see its logs")
    for number, kind in enumerate(faults, 1):
        time.sleep(rng.uniform(0, max_pause))
        at = time.time()
        what, faulted = INJECT[kind](settings)
        seconds = wait_recovered(settings, at, faulted)
        report.faults.append(
            Fault(number, kind, what, f"{datetime.fromtimestamp(at, UTC):%H:%M:%S}", seconds)
        )
        say(
            f"fault {number}/{len(faults)}: {what}; "
            + (f"recovered in {seconds:.0f} s" if math.isfinite(seconds) else "NOT recovered")
        )
        if not math.isfinite(seconds):
            break  # the platform did not come back: counting now would only blame that
    say(f"faults done; {settle_seconds:.0f} s more of events, then the closing page views")
    time.sleep(settle_seconds)
    malformed = stream.stop()
    closing, watermark = stream.closing_events(settings)
    stream.send_events(closing)
    report.events_sent = stream.valid + len(closing)
    report.events_undelivered = stream.undelivered
    say(f"waiting until every query has read everything and its watermark passed {watermark}")
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while not closed(settings, watermark):
        if time.monotonic() > deadline:
            say("the queries did not catch up; counting what they wrote")
            break
        time.sleep(3)
    report.streaming_runs_started = api.run_count("streaming") - runs_before
    records = read_to_end(settings.bootstrap_servers, settings.kafka.input_topic)
    events = [json.loads(r.value) for r in records if r.key != MALFORMED_KEY]
    report.events_in_topic = len(events)
    say(f"counting {len(events):,} events' rows against the oracle")
    report.tables = [count_table(a, events, watermark, settings) for a in ORACLES]
    report.dead_letters = count_dead_letters(settings, malformed)
    report.late_rows_counted = late_rows(settings)
    report.finished = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return report


def late_rows(settings: Settings) -> int:
    from include.progress import read_progress

    return sum(r.get("rowsDroppedByWatermark") or 0 for r in read_progress(settings.metrics_dir))


# ---------------------------------------------------------------- the report


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} / {max(values):.0f}"


def markdown(report: Report, command: str) -> str:
    lines = [
        "# Fault campaign",
        "",
        f"`{command}`, {report.started} to {report.finished}, on a {report.cores}-core "
        "machine. Written by `make chaos` (tests/chaos.py).",
        "",
        f"Events in the tutorial's format at {report.rate:g}/s throughout; the supervisor DAG "
        f"looked every {report.supervisor_interval_seconds} s and did every restart. "
        f"**Verdict: {'PASS' if report.ok else 'FAIL'}**.",
        "",
        "## Faults and recoveries",
        "",
        "Recovery: from the fault to every query having a live driver and a batch committed "
        "after the fault.",
        "",
        "| fault | injected | recovered | recovery p50 / max (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, label in KINDS.items():
        mine = [f for f in report.faults if f.kind == kind]
        times = [f.recovery_seconds for f in mine if math.isfinite(f.recovery_seconds)]
        lines.append(f"| {label} | {len(mine)} | {len(times)} | {_seconds(times)} |")
    lines += [
        f"| **all** | **{len(report.faults)}** | **{len(report.recovered)}** | "
        f"**{_seconds(report.recovered)}** |",
        "",
        f"Streaming runs the supervisor started: {report.streaming_runs_started}.",
        "",
        "## Rows, against the independent oracle",
        "",
        f"{report.events_in_topic:,} events in the input topic "
        f"({report.events_undelivered} could not be delivered by the campaign's producer); "
        f"{report.late_rows_counted} rows were counted as later than the watermark.",
        "",
        "| table | expected | written | lost | duplicated | wrong | unexplained |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in report.tables:
        lines.append(
            f"| {t.table} | {t.expected:,} | {t.written:,} | {t.lost} | {t.duplicated} | "
            f"{t.wrong} | {t.unexplained} |"
        )
    lines.append(
        f"| **all** | **{report.total('expected'):,}** | **{report.total('written'):,}** | "
        f"**{report.total('lost')}** | **{report.total('duplicated')}** | "
        f"**{report.total('wrong')}** | **{report.total('unexplained')}** |"
    )
    dl = report.dead_letters
    if dl is not None:
        lines += [
            "",
            "## Malformed records",
            "",
            "| sent | dead-lettered exactly once | missing | duplicated | wrong reason | "
            "dead letters of valid events |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {dl.malformed_sent} | {dl.exactly_once} | {dl.missing} | {dl.duplicated} | "
            f"{dl.wrong_reason} | {dl.not_malformed} |",
        ]
    lines += [
        "",
        "## Every fault",
        "",
        "| # | at (UTC) | fault | recovery (s) |",
        "| ---: | --- | --- | ---: |",
    ]
    for f in report.faults:
        lines.append(f"| {f.number} | {f.at} | {f.what} | {f.recovery_seconds:.0f} |")
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    kinds = ", ".join(f"{k} {sum(f.kind == k for f in report.faults)}" for k in KINDS)
    return (
        f"faults {len(report.faults)} ({kinds}); recovered {len(report.recovered)}, "
        f"p50/max {_seconds(report.recovered)} s; rows lost {report.total('lost')}, "
        f"duplicated {report.total('duplicated')}, wrong {report.total('wrong')}, "
        f"unexplained {report.total('unexplained')}; malformed dead-lettered exactly once "
        f"{report.dead_letters.exactly_once if report.dead_letters else 0}/"
        f"{report.dead_letters.malformed_sent if report.dead_letters else 0}"
    )


# ---------------------------------------------------------------- `make chaos`


FROZEN_AFTER_SECONDS = 15  # lease heartbeat age that makes the supervisor call a driver frozen


def platform_env(state: Path, supervisor_interval: int) -> dict[str, str]:
    """A platform of its own: a fresh state dir and free ports, nothing started by itself,
    and a supervisor that looks every `supervisor_interval` seconds."""
    return {
        "ECOM_STATE_DIR": str(state),
        "ECOM_KAFKA__PORT": str(free_port()),
        "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        "ECOM_POSTGRES__PORT": str(free_port()),
        "ECOM_AIRFLOW__PORT": str(free_port()),
        "ECOM_AUTOSTART": "0",
        "ECOM_SUPERVISOR__INTERVAL_SECONDS": str(supervisor_interval),
        "ECOM_SUPERVISOR__FROZEN_AFTER_SECONDS": str(FROZEN_AFTER_SECONDS),
    }


def start_streaming(settings: Settings, api: AirflowApi) -> None:
    """Topics, then a streaming run; the DAGs the campaign does not exercise are paused."""
    deadline = time.monotonic() + 180
    while not all(api.dag_exists(d) for d in ("provision_topics", "streaming", "supervisor")):
        if time.monotonic() > deadline:
            raise RuntimeError("the DAGs did not load in 180 s; see the dag-processor log")
        time.sleep(3)
    for dag_id in ("data_quality", "streaming_restart", "producer", "backfill"):
        api.pause(dag_id)
    run = api.trigger("provision_topics")
    if api.wait_for_run("provision_topics", run, {"success"}, timeout=300) != "success":
        raise RuntimeError("provision_topics failed; see its task log")
    api.trigger("streaming")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the driver")
    parser.add_argument("--freezes", type=int, default=3, help="SIGSTOPs of the driver")
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--scheduler-restarts", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--max-pause", type=float, default=20.0, help="seconds, before a fault")
    parser.add_argument("--supervisor-interval", type=int, default=20, help="seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--state-dir", type=Path, help="default: a new temporary directory")
    parser.add_argument("--keep-running", action="store_true", help="no `make down` at the end")
    args = parser.parse_args(argv)
    plan = Plan(args.kills, args.freezes, args.broker_restarts, args.scheduler_restarts)
    state = args.state_dir or Path(tempfile.mkdtemp(prefix="ecom-chaos-"))
    env = platform_env(state, args.supervisor_interval)
    os.environ.update(env)
    settings = Settings()
    cli = [sys.executable, "-m", "include.runtime.cli"]
    say(f"a platform of its own in {state}: make up")
    subprocess.run([*cli, "up"], check=True, cwd=PROJECT_ROOT)
    try:
        api = api_client(settings)
        api.login()
        start_streaming(settings, api)
        report = run_campaign(
            settings, api, plan, rate=args.rate, seed=args.seed, max_pause=args.max_pause
        )
    finally:
        if not args.keep_running:
            say("make down")
            subprocess.run([*cli, "down"], check=False, cwd=PROJECT_ROOT)
    command = 'make chaos ARGS="' + " ".join(argv if argv is not None else sys.argv[1:]) + '"'
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(markdown(report, command))
    args.report.with_suffix(".json").write_text(json.dumps(report.to_json(), indent=2, default=str))
    say(summary(report))
    say(f"report: {args.report}; platform state kept in {state}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
