"""What a benchmark run measures: the levers (settings variants of the pipeline run) and
the plans that order them, the full run's and the CI smoke's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import tutorial_queries
from benchmarks.designs import DESIGN_APP
from include.analytics import ANALYTIC_NAMES, DEAD_LETTERS
from include.runtime.spark_launch import STREAMING_APP

# The generated events' seed: every run sends the same events.
SEED = 2024


@dataclass(frozen=True)
class Lever:
    """One settings variant of the pipeline run: Settings overrides by environment."""

    label: str
    env: dict[str, str] = field(default_factory=dict)
    max_offsets: int = 200_000  # the platform's default (config/platform.toml)
    # A design of benchmarks/design_app.py instead of the platform's application.
    design: str = ""
    # The streaming queries the run waits for (the platform's application runs just these).
    queries: tuple[str, ...] = ANALYTIC_NAMES
    trigger_seconds: int | None = None  # None: the stage's own
    seconds: float | None = None  # how long a steady-rate run produces; None: the stage's
    # After the input stops, watch the idle rule close the last windows (the platform's
    # defaults): the run ends idle_close_seconds + the plan's idle_watch_seconds after its
    # last event.
    idle_watch: bool = False

    @property
    def app(self) -> Path:
        """The application the lever runs: a design's, or the platform's."""
        return DESIGN_APP if self.design else STREAMING_APP

    @property
    def app_args(self) -> tuple[str, ...]:
        """The design to run, or the platform's application's outputs when not all."""
        if self.design:
            return ("--design", self.design)
        return ("--outputs", ",".join(self.queries)) if self.queries != ANALYTIC_NAMES else ()


@dataclass(frozen=True)
class Plan:
    """The sizes of one benchmark run and the levers each stage compares."""

    mode: str
    events: int  # preloaded for the pipeline run (and the producers' and tools' count)
    users: int
    span_minutes: float  # event time the preloaded events cover
    tutorial_events: int
    levers: tuple[Lever, ...]  # compared side by side on lever_events of their own
    lever_events: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    trigger_seconds: int
    scale_users: tuple[int, ...]
    scale_events: int
    profile: bool
    # (2) The Kafka clients side by side (benchmarks/client_variants.py): events per run,
    # and rounds of every client, format and the Java producer, interleaved.
    client_events: int = 400_000
    client_rounds: int = 4
    # (3c) Each query alone on the pipeline's preload: the floor of all analytics together.
    alone: tuple[Lever, ...] = ()
    # (6) The make-up default rate, each lever for rest_seconds: CPU and the breakdown.
    rest_levers: tuple[Lever, ...] = ()
    # (4) The rates at which the `beside` levers (the before row, the peer) run too, after
    # the defaults.
    latency_before_rates: tuple[int, ...] = ()
    beside: tuple[Lever, ...] = ()
    # Settings of every run of the plan, by environment.
    env: dict[str, str] = field(default_factory=dict)
    # How long after the idle rule's first close a run with idle_watch goes on: its ticks
    # close the windows that end later, every idle_tick_seconds.
    idle_watch_seconds: float = 30
    rest_rate: int = 50
    rest_seconds: float = 300
    timeout: float = 3600


TWO_PARTITIONS_ENV = {"ECOM_SPARK__SHUFFLE_PARTITIONS": "2"}
TWO_PARTITIONS = Lever("2 shuffle partitions (the default until issue 14)", TWO_PARTITIONS_ENV)
AFTER = Lever("platform defaults: 1 shuffle partition", idle_watch=True)
HDFS_STATE = Lever(
    "platform defaults, state in the JVM heap (hdfs store)", {"ECOM_SPARK__STATE_STORE": "hdfs"}
)

# Spark's and Delta's own defaults for what spark_jobs/session.PER_BATCH_COST_CONF
# changes: the before row of the per-batch cost.
PER_BATCH_BEFORE = Lever(
    "before: Spark's 100 cached classes, Delta's 50 snapshot partitions, 2 shuffle partitions",
    {
        **TWO_PARTITIONS_ENV,
        "ECOM_SPARK__CONF": json.dumps(
            {
                "spark.sql.codegen.cache.maxEntries": "100",
                "spark.databricks.delta.snapshotPartitions": "50",
            }
        ),
    },
)
PER_BATCH_AFTER = Lever("platform defaults", idle_watch=True)
# The rows a batch made final published with the next batch, one trigger later, not by a
# batch right after it (the default, "at_once").
EMIT_INTERVAL = Lever(
    "platform defaults, [spark] emit = interval", {"ECOM_SPARK__EMIT": "interval"}, idle_watch=True
)
# The design the one query replaced: six queries, each reading and parsing the topic, each
# writing its table and topic with Spark's sinks (benchmarks/six_queries.py).
SIX_QUERIES = Lever(
    "before: six queries, Spark's Delta and Kafka sinks (benchmarks/six_queries.py)",
    design="independent",
)
# The peer row: the tutorial's own windowed queries, update mode, its 10 s trigger, to Kafka.
TUTORIAL_PEER = Lever(
    "peer: the tutorial's queries, update mode, trigger 10 s (benchmarks/tutorial_queries.py)",
    design="tutorial",
    queries=tutorial_queries.NAMES,
    trigger_seconds=10,
)
# The stages a full run can leave to their own runs (`--skip`).
SKIPPABLE = ("alone", "at_rest")
# What a micro-batch costs at the least, and designs that share the per-batch work: at the
# 1 s trigger that results within seconds need (latency is about two triggers and a batch).
FLOOR = (
    Lever(
        "floor: the dead-letter query alone (no state, nothing to write), trigger 1 s",
        queries=(DEAD_LETTERS.name,),
        trigger_seconds=1,
        seconds=180,
    ),
    # The same at `make up`'s trigger: with the row above, what a batch costs (c) and what
    # the JVM costs between batches (b), from cores = b + c / trigger.
    Lever(
        "floor: the dead-letter query alone, trigger 10 s",
        queries=(DEAD_LETTERS.name,),
        seconds=180,
    ),
    Lever("platform defaults, trigger 1 s", trigger_seconds=1, seconds=180),
)
# Target 3's floor: each query alone on the pipeline's own preload, after the pipeline run.
# Whatever the design, all analytics from a backlog must at least read, parse and validate
# every event (the dead-letter query does only that) and do the costliest analytic's work,
# so together they cannot go faster than the slowest of these. With 2 shuffle partitions, so
# that a single query's stateful stage can use both cores.
ALONE = tuple(
    Lever(f"{query} alone", {"ECOM_SPARK__SHUFFLE_PARTITIONS": "2"}, queries=(query,))
    for query in (DEAD_LETTERS.name, *ANALYTIC_NAMES)
)

FULL = Plan(
    mode="full",
    events=2_000_000,
    users=20_000,
    span_minutes=120,
    tutorial_events=5_000,
    levers=(SIX_QUERIES, TWO_PARTITIONS, AFTER, HDFS_STATE),
    alone=ALONE,
    lever_events=200_000,
    latency_rates=(1_000, 2_000, 5_000),
    latency_before_rates=(2_000,),
    beside=(SIX_QUERIES, TUTORIAL_PEER),
    latency_seconds=300,  # issue 14's targets hold a rate for at least 5 minutes
    trigger_seconds=1,
    scale_users=(1_000, 100_000, 1_000_000),
    scale_events=500_000,
    profile=True,
    # State in the heap is stage 3's concern.
    rest_levers=(SIX_QUERIES, PER_BATCH_AFTER, EMIT_INTERVAL, TUTORIAL_PEER, *FLOOR),
)
SHORT = Plan(
    mode="short",
    # Sizes that prove every stage runs and reports, in as little of CI's time as they can:
    # the full run is the one that measures.
    events=5_000,
    users=1_000,
    span_minutes=60,
    tutorial_events=1_000,
    levers=(),
    lever_events=0,
    latency_rates=(150,),
    latency_before_rates=(150,),
    beside=(TUTORIAL_PEER,),
    # Two of the peer's 10 s triggers and windows, and a few whole 10 s revenue windows.
    latency_seconds=25,
    trigger_seconds=1,
    scale_users=(1_000, 5_000),  # the first is the pipeline run itself
    scale_events=5_000,
    profile=False,
    # Every client and format once: JVM and interpreter start-up are most of each run.
    client_events=2_000,
    client_rounds=1,
    timeout=600,
    # A 10 s watermark, not the default minute, and 10 s revenue windows: a few lie whole
    # inside the short latency run and close in it. The idle rule's close (a latency run
    # watches it) in seconds, ticking every 2 s: it closes the last ones within the watch.
    idle_watch_seconds=10,
    env={
        "ECOM_ANALYTICS__WATERMARK_SECONDS": "10",
        "ECOM_ANALYTICS__IDLE_CLOSE_SECONDS": "10",
        "ECOM_ANALYTICS__IDLE_TICK_SECONDS": "2",
        "ECOM_ANALYTICS__REVENUE_WINDOW_SECONDS": "10",
        "ECOM_ANALYTICS__REVENUE_SLIDE_SECONDS": "5",
    },
)
