"""The campaign itself, on a running platform: faults one at a time, then the counts.

`run_campaign` starts the event stream, waits for a healthy driver, and injects the planned
faults one at a time, in a shuffled order, each at a random moment (a random pause after
the platform recovered from the one before).  Then it stops the stream and sends page
views far enough ahead to close every window and session, waits until every query has
read everything and emitted what that closes, and counts.  The `Report` it returns holds
the counts and the verdict: nothing lost, duplicated or wrong, and the platform recovered
from every fault.

`make chaos` runs it on a platform of its own; the end-to-end test runs a short campaign
(one fault of each kind) on its platform.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from include.analytics import ANALYTICS, CLICK_TO_PURCHASE
from include.kafka.client import end_offsets, read_to_end
from include.runtime.airflow_api import AirflowApi
from include.settings import Settings
from include.streaming import checkpoints
from include.streaming.progress import last_progress, read_progress
from tests.chaos.counting import DeadLetterCount, TableCount, count_dead_letters, count_table
from tests.chaos.faults import INJECT, RECOVERY_TIMEOUT, Plan, wait_recovered
from tests.chaos.stream import MALFORMED_KEY, EventStream
from tests.integration.dataset import ORACLES
from tests.wire import events_in

# The analytics whose rows wait for the watermark (click_to_purchase emits a pair as soon as
# both events are in, and its watermark is the slower of its two sides').
WINDOWED = [a.name for a in ANALYTICS if a is not CLICK_TO_PURCHASE]


def say(message: str) -> None:
    """One line of the campaign's progress, with the time."""
    print(f"[chaos] {datetime.now(UTC):%H:%M:%S} {message}", flush=True)


@dataclass
class Fault:
    """One injected fault, and the seconds until the platform recovered (inf: it did not)."""

    number: int
    kind: str
    what: str
    at: str
    recovery_seconds: float


@dataclass
class Report:
    """What a campaign did and counted; `ok` is its verdict."""

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
    """The watermark in the query's last progress record (None before it has one)."""
    record = last_progress(settings.paths.metrics_dir, [query]).get(query) or {}
    mark = record.get("watermark")
    return datetime.fromisoformat(mark) if mark else None


def closed(settings: Settings, watermark: datetime) -> bool:
    """Every query has read the whole input topic, and every windowed analytic's watermark
    has reached `watermark` (the batch that emitted what it closes has finished)."""
    ends = end_offsets(settings.bootstrap_servers, settings.kafka.input_topic)
    behind = checkpoints.lag(checkpoints.inspect(settings.paths.pipeline_checkpoint), ends)
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
    events = events_in((r.value for r in records if r.key != MALFORMED_KEY), settings)
    report.events_in_topic = len(events)
    say(f"counting {len(events):,} events' rows against the oracle")
    report.tables = [count_table(a, events, watermark, settings) for a in ORACLES]
    report.dead_letters = count_dead_letters(settings, malformed)
    report.late_rows_counted = late_rows(settings)
    report.finished = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    return report


def late_rows(settings: Settings) -> int:
    """Rows the queries dropped as later than their watermark, over every progress record."""
    return sum(
        r.get("rowsDroppedByWatermark") or 0 for r in read_progress(settings.paths.metrics_dir)
    )
