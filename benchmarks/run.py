"""The platform's benchmarks: how fast, against what ceiling, and how cost grows.

    make bench          # the full run, by hand (about 100 minutes on 2 cores): rewrites
                        # BENCHMARKS.md and docs/benchmarks/{results.json,benchmarks.png}
    make bench ARGS="--skip alone --skip at_rest"
                        # about 50 minutes: stages 3c and 6 shown from their own runs
                        # (python -m benchmarks.alone, python -m benchmarks.at_rest)
    make bench-short    # the CI smoke (a few minutes): the same stages, small numbers,
                        # written under state/bench/short/

Everything is measured in ONE run on one broker of its own (free ports), so every figure
sits beside the ceiling it is compared with (this machine is shared and noisy); a stage
left out with --skip is shown from its own run, which names itself:

1. Kafka's ceiling: ProducerPerformance and ConsumerPerformance (Kafka's own Java tools,
   same jars as the broker), 300-byte records, the platform's producer settings.
2. The platform's producer (acks=all, idempotence, compression) preloading the pipeline's
   input, and the tutorial's producer (`future.get()` after every send), as ratios to (1).
3. Pipeline throughput: the streaming application, all analytics, from the earliest
   offset over the preloaded events; events/s from its progress records, as a ratio to
   the consumer ceiling.  In the full mode the levers (settings before and after, and
   the alternatives measured) run side by side first, on a smaller preload of their own;
   then (3c, target 3's floor) each query alone on the same preload.
4. Latency at steady input rates: producer and streaming application together; per
   analytic, p50/p95/p99 from the moment a row became final to the moment it is visible
   in the output topic and in the sink table (benchmarks/latency.py says exactly how).
   A rate above the measured pipeline throughput is not run: its backlog, and so its
   latency, would grow for as long as the run lasted.  At 2,000 events/s the before row
   of issue 14 runs too.
5. Scale: state rows, state memory and batch duration as distinct users grow.
6. At rest (full mode): the `make up` producer rate for five minutes, the per-batch levers
   before and after side by side, then the floor rows (FLOOR: the 1 s trigger with one
   query, one analytic, all six; one query at 10 s; all analytics as one query): the
   application's CPU (its
   whole process tree, per minute and by kind of thread, benchmarks/threads.py) and
   where each query's micro-batch goes (benchmarks/breakdown.py).  Every latency run
   reports the same.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import psutil
from kafka.admin import NewTopic

from benchmarks import breakdown, kafka_tools, latency, producer_levers, producers, threads
from benchmarks.designs import DESIGN_APP, Variant, run_variant
from include.analytics import ANALYTIC_NAMES as ANALYTICS  # TEMP-R15
from include.events import EventGenerator, iso_utc
from include.kafka_client import admin, read_to_end
from include.producer import ProducerParams, run_producer
from include.progress import read_progress
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import PROJECT_ROOT, Settings
from include.topics import provision

log = logging.getLogger("benchmarks.run")

RECORD_SIZE = 300
# How long a latency run may take to work off its backlog once the input stops.
DRAIN_SECONDS = 180
PUBLISHED = PROJECT_ROOT / "docs" / "benchmarks"
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
    queries: tuple[str, ...] = ANALYTICS
    trigger_seconds: int | None = None  # None: the stage's own
    seconds: float | None = None  # how long a steady-rate run produces; None: the stage's

    @property
    def app(self) -> Path:
        return DESIGN_APP if self.design else STREAMING_APP

    @property
    def app_args(self) -> tuple[str, ...]:
        """The design to run, or the platform's application's queries when not all."""
        if self.design:
            return ("--design", self.design)
        return ("--queries", ",".join(self.queries)) if self.queries != ANALYTICS else ()


@dataclass(frozen=True)
class Plan:
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
    # (3c) Each query alone on the pipeline's preload: the floor of all analytics together.
    alone: tuple[Lever, ...] = ()
    # (6) The make-up default rate, each lever for rest_seconds: CPU and the breakdown.
    rest_levers: tuple[Lever, ...] = ()
    # (4) The rates at which the before row (PER_BATCH_BEFORE) runs too, after the defaults.
    latency_before_rates: tuple[int, ...] = ()
    rest_rate: int = 50
    rest_seconds: float = 300
    timeout: float = 3600


TWO_PARTITIONS_ENV = {"ECOM_SPARK__SHUFFLE_PARTITIONS": "2"}
TWO_PARTITIONS = Lever("2 shuffle partitions (the default until issue 14)", TWO_PARTITIONS_ENV)
AFTER = Lever("platform defaults: 1 shuffle partition")
HDFS_STATE = Lever(
    "platform defaults, state in the JVM heap (hdfs store)", {"ECOM_SPARK__STATE_STORE": "hdfs"}
)

# Spark's and Delta's own defaults for what spark_jobs/streaming_app.PER_BATCH_COST_CONF
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
PER_BATCH_AFTER = Lever("platform defaults")
# Issue 14's targets: the streaming application's cores at rest (PER_BATCH_AFTER), and
# all analytics' events/s from a backlog.
REST_CORES_TARGET = 0.15
BACKLOG_TARGET = 12_000
# The stages a full run can leave to their own runs (`--skip`).
SKIPPABLE = ("alone", "at_rest")
# What a micro-batch costs at the least, and designs that share the per-batch work: at the
# 1 s trigger that results within seconds need (latency is about two triggers and a batch).
FLOOR = (
    Lever(
        "floor: the dead-letter query alone (no state, nothing to write), trigger 1 s",
        queries=("dead_letters",),
        trigger_seconds=1,
        seconds=180,
    ),
    # The same at `make up`'s trigger: with the row above, what a batch costs (c) and what
    # the JVM costs between batches (b), from cores = b + c / trigger.
    Lever(
        "floor: the dead-letter query alone, trigger 10 s",
        queries=("dead_letters",),
        seconds=180,
    ),
    Lever(
        "floor: revenue_by_category alone (de-duplication, windows, table, topic), trigger 1 s",
        queries=("revenue_by_category",),
        trigger_seconds=1,
        seconds=180,
    ),
    Lever("platform defaults, trigger 1 s", trigger_seconds=1, seconds=180),
    Lever(
        "all analytics as one query (benchmarks/design_app.py one_query)",
        design="one_query",
        queries=("analytics",),
        seconds=180,
    ),
)
# Target 3's floor: each query alone on the pipeline's own preload, after the pipeline run.
# Whatever the design, all analytics from a backlog must at least read, parse and validate
# every event (the dead-letter query does only that) and do the costliest analytic's work,
# so together they cannot go faster than the slowest of these. With 2 shuffle partitions, so
# that a single query's stateful stage can use both cores.
ALONE = tuple(
    Lever(f"{query} alone", {"ECOM_SPARK__SHUFFLE_PARTITIONS": "2"}, queries=(query,))
    for query in ("dead_letters", *ANALYTICS)
)

FULL = Plan(
    mode="full",
    events=2_000_000,
    users=20_000,
    span_minutes=120,
    tutorial_events=5_000,
    levers=(PER_BATCH_BEFORE, TWO_PARTITIONS, AFTER, HDFS_STATE),
    alone=ALONE,
    lever_events=200_000,
    latency_rates=(1_000, 2_000, 5_000),
    latency_before_rates=(2_000,),
    latency_seconds=300,  # issue 14's targets hold a rate for at least 5 minutes
    trigger_seconds=1,
    scale_users=(1_000, 100_000, 1_000_000),
    scale_events=500_000,
    profile=True,
    rest_levers=(PER_BATCH_BEFORE, TWO_PARTITIONS, PER_BATCH_AFTER, *FLOOR),
)
SHORT = Plan(
    mode="short",
    events=10_000,
    users=1_000,
    span_minutes=60,
    tutorial_events=1_000,
    levers=(),
    lever_events=0,
    latency_rates=(150,),
    latency_seconds=40,
    trigger_seconds=1,
    scale_users=(1_000, 10_000),  # the first is the pipeline run itself
    scale_events=10_000,
    profile=False,
    timeout=600,
)


class Bench:
    """One broker, one output directory, and the stages in order."""

    def __init__(self, plan: Plan, out: Path, driver_memory: str) -> None:
        self.plan = plan
        self.out = out
        self.driver_memory = driver_memory
        self.env = {
            "ECOM_KAFKA__PORT": str(free_port()),
            "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
            "ECOM_KAFKA__HEAP": "1g",
        }
        os.environ.update(self.env)
        self.settings = Settings(state_dir=out / "broker")
        self.results: dict = {"mode": plan.mode, "started": iso_utc(datetime.now(UTC))}
        self.scale_points: dict[tuple[int, int], tuple] = {}
        # Set to a directory: each latency run's driver records a Java Flight Recording
        # there (benchmarks/jfr_summary.py reads it).
        self.jfr_dir: Path | None = None
        self.distinct_users: dict[int, int] = {}

    # ------------------------------------------------------------------ helpers

    def topic_env(self, name: str) -> dict[str, str]:
        """Settings for a run of its own: input topic, output topics, dead letters."""
        return {
            **self.env,
            "ECOM_KAFKA__INPUT_TOPIC": f"{name}-events",
            "ECOM_KAFKA__OUTPUT_TOPIC_PREFIX": f"{name}.",
            "ECOM_KAFKA__DEAD_LETTER_TOPIC": f"{name}-events-dlq",
        }

    def provisioned(self, name: str) -> tuple[Settings, dict[str, str]]:
        env = self.topic_env(name)
        os.environ.update(env)
        settings = Settings(state_dir=self.out / name)
        provision(settings)
        return settings, env

    def driver_conf(self, name: str) -> dict[str, str]:
        if self.jfr_dir is None:
            return {}
        recording = self.jfr_dir / f"{name}.jfr"
        return {
            "spark.driver.extraJavaOptions": "-XX:FlightRecorderOptions:stackdepth=512 "
            f"-XX:StartFlightRecording=delay=60s,settings=profile,dumponexit=true,filename={recording}"
        }

    def make_topic(self, name: str) -> None:
        client = admin(self.settings.bootstrap_servers)
        try:
            client.create_topics([NewTopic(name, self.settings.kafka.partitions, 1)])
        finally:
            client.close()

    def spread_events(self, count: int, users: int) -> list[dict]:
        """`count` events evenly over the plan's span of event time, ending now (the span
        exceeds the 30-minute session gap, so sessions close and state is bounded)."""
        span = timedelta(minutes=self.plan.span_minutes)
        start = datetime.now(UTC) - span
        # Spread over the whole pool, not visits: the scale points compare distinct users.
        generator = EventGenerator(seed=SEED, users=users, products=500, visits=False)
        return list(generator.stream(start, span / count, count))

    # ------------------------------------------------------------------ stages

    def kafka_ceiling(self) -> None:
        """(1) Kafka's Java producer with the platform's producer settings."""
        self.make_topic("bench-perf")
        props = producers.java_producer_props()
        result = kafka_tools.producer_performance(
            self.settings, "bench-perf", self.plan.events, RECORD_SIZE, props
        )
        log.info("Kafka's Java producer: %.0f records/s", result.records_per_second)
        self.results["kafka_ceiling"] = {
            "record_size": RECORD_SIZE,
            "producer_props": props,
            "producer": asdict(result),
        }

    def producers(self) -> Settings:
        """(2) The platform's producer preloads the pipeline's input; the tutorial's
        producer sends a slice of the same events to a topic of its own."""
        settings, _ = self.provisioned("pipeline")
        began = time.perf_counter()
        events = self.spread_events(self.plan.events, self.plan.users)
        generation = round(len(events) / (time.perf_counter() - began))
        self.distinct_users[self.plan.users] = len({e["user_id"] for e in events})
        encoding, value_bytes = producers.timed_encoding(events)
        platform_result = producers.timed_platform_producer(
            settings.bootstrap_servers, settings.kafka.input_topic, events, len(events)
        )
        log.info("platform producer: %d events/s", platform_result.events_per_second)
        self.make_topic("bench-tutorial")
        tutorial = producers.timed_tutorial_producer(
            settings.bootstrap_servers, "bench-tutorial", events[: self.plan.tutorial_events]
        )
        log.info("tutorial producer: %d events/s", tutorial.events_per_second)
        java = self.results["kafka_ceiling"]["producer"]["records_per_second"]
        self.results["producer"] = {
            "platform": asdict(platform_result),
            "tutorial": asdict(tutorial),
            "generation_events_per_second": generation,
            "encoding_events_per_second": encoding,
            "mean_value_bytes": value_bytes,
            "ratio_platform_to_java": round(platform_result.events_per_second / java, 3),
            "ratio_tutorial_to_java": round(tutorial.events_per_second / java, 4),
        }
        consumer = kafka_tools.consumer_performance(
            settings, settings.kafka.input_topic, self.plan.events
        )
        log.info("Kafka's Java consumer: %.0f records/s", consumer.records_per_second)
        self.results["kafka_ceiling"]["consumer"] = asdict(consumer)
        return settings

    def levers(self) -> None:
        """(3a) Each settings variant on the same smaller preload, one after the other."""
        if not self.plan.levers:
            return
        settings, _ = self.provisioned("levers")
        events = self.spread_events(self.plan.lever_events, self.plan.users)
        producers.timed_platform_producer(
            settings.bootstrap_servers, settings.kafka.input_topic, events, len(events)
        )
        del events
        self.results["levers"] = [
            self.pipeline_run(f"lever_{n}", "levers", lever, self.plan.lever_events)
            for n, lever in enumerate(self.plan.levers)
        ]

    def pipeline(self) -> None:
        """(3b) The platform's defaults over the full preload: sustained throughput."""
        self.results["pipeline"] = self.pipeline_run(
            "pipeline_run", "pipeline", AFTER, self.plan.events
        )

    def alone(self) -> None:
        """(3c) Each query by itself on the same preload as the pipeline run."""
        self.results["alone"] = [
            self.pipeline_run(f"alone_{n}", "pipeline", lever, self.plan.events)
            for n, lever in enumerate(self.plan.alone)
        ]

    def pipeline_run(self, label: str, topics: str, lever: Lever, count: int) -> dict:
        ceiling = self.results["kafka_ceiling"]["consumer"]["records_per_second"]
        result, records = self.run_app(label, topics, lever, count)
        if lever == AFTER and topics == "pipeline":
            self.scale_points[(self.plan.users, count)] = (result, records)
        return {
            **asdict(result),
            "label": lever.label,
            "settings": {**lever.env, "max_offsets_per_trigger": lever.max_offsets},
            "ratio_to_consumer_ceiling": round(result.events_per_second / ceiling, 4),
            "batch_ms": batch_durations(records),
            "where_time_goes": time_breakdown(records),
        }

    def run_app(self, label: str, topics: str, lever: Lever, count: int):
        env = {**self.topic_env(topics), **lever.env}
        variant = Variant(label, lever.app, lever.app_args, lever.queries)
        args = SimpleNamespace(
            max_offsets=lever.max_offsets,
            driver_memory=self.driver_memory,
            timeout=self.plan.timeout,
        )
        result = run_variant(variant, self.out, env, count, args)
        return result, read_progress(self.out / label / "metrics")

    def latency(self) -> None:
        """(4) Steady input at each rate, the application running with a short trigger."""
        sustained = self.results["pipeline"]["events_per_second"]
        runs = []
        for rate in self.plan.latency_rates:
            if rate > 0.9 * sustained:
                log.info(
                    "latency at %d events/s: not run, above the pipeline's %d", rate, sustained
                )
                runs.append(
                    {
                        "rate": rate,
                        "skipped": f"above the measured pipeline throughput ({sustained:,} "
                        "events/s): the backlog, and the latency, would grow without bound",
                    }
                )
            else:
                runs.append({"label": AFTER.label, **self.latency_at(rate)})
                if rate in self.plan.latency_before_rates:
                    before = self.latency_at(rate, PER_BATCH_BEFORE, f"latency{rate}_before")
                    runs.append({"label": PER_BATCH_BEFORE.label, **before})
        self.results["latency"] = runs

    def at_rest(self) -> None:
        """(6) The make-up default rate: the application's CPU and where a batch goes."""
        self.results["at_rest"] = [
            {
                "label": lever.label,
                "settings": lever.env,
                **self.latency_at(
                    self.plan.rest_rate,
                    lever,
                    f"rest{n}",
                    # `make up`'s trigger, not the latency runs' short one.
                    trigger_seconds=lever.trigger_seconds or self.settings.spark.trigger_seconds,
                    seconds=lever.seconds or self.plan.rest_seconds,
                ),
            }
            for n, lever in enumerate(self.plan.rest_levers)
        ]

    def latency_at(
        self,
        rate: int,
        lever: Lever = AFTER,
        name: str = "",
        trigger_seconds: int | None = None,
        seconds: float | None = None,
    ) -> dict:
        name = name or f"latency{rate}"
        trigger_seconds = trigger_seconds or self.plan.trigger_seconds
        seconds = seconds or self.plan.latency_seconds
        settings, env = self.provisioned(name)
        env = {**env, **lever.env}
        state = self.out / name
        stop_file = state / "stop"
        ui = f"http://127.0.0.1:{free_port()}"
        app = launch_app(
            settings,
            lever.app,
            state / "app.log",
            *lever.app_args,
            "--trigger-seconds",
            str(trigger_seconds),
            "--stop-file",
            str(stop_file),
            env={**env, "ECOM_STATE_DIR": str(state)},
            master="local[2]",
            driver_memory=self.driver_memory,
            # The REST API the breakdown reads, remembering every job of the run.
            conf={
                "spark.ui.port": ui.rpartition(":")[2],
                "spark.ui.retainedJobs": "1000000",
                "spark.ui.retainedStages": "1000000",
                **self.driver_conf(name),
            },
        )
        try:
            wait_for(
                lambda: started_queries(state) >= set(lever.queries), app, 300, "queries start"
            )
            cpu_before = cpu_seconds(app.pid)
            reading = threads.Reading.of(app.pid, cpu_before)
            log.info(
                "%s at %d events/s (%s): producing for %.0f s", name, rate, lever.label, seconds
            )
            began = time.time()
            with CoresPerMinute(app.pid) as per_minute:
                stats = run_producer(
                    settings.bootstrap_servers,
                    settings.kafka.input_topic,
                    ProducerParams(rate=rate, duration_seconds=seconds, seed=SEED),
                )
            ended = time.time()
            cpu_after = cpu_seconds(app.pid)
            cores = (cpu_after - cpu_before) / (ended - began)
            cpu_split = threads.split(
                reading, threads.Reading.of(app.pid, cpu_after), ended - began
            )
            try:
                wait_for(
                    lambda: caught_up(state, ended, lever.queries),
                    app,
                    DRAIN_SECONDS,
                    "the backlog",
                )
                behind = None
            except TimeoutError:
                behind = f"still behind {DRAIN_SECONDS} s after the input stopped"
                log.info("latency at %d events/s: %s; stopping it anyway", rate, behind)
            try:
                jobs = breakdown.fetch_jobs(ui)
            except (OSError, ValueError) as error:  # requests' errors are OSErrors
                log.warning("%s: no job breakdown, the Spark UI did not answer: %s", name, error)
                jobs = []
            stop_file.touch()
            app.wait(180)
        finally:
            if app.poll() is None:
                stop_tree(app.pid)
        analytics = {}
        for analytic in latency.LATENCY_ANALYTICS:
            topic = read_to_end(settings.bootstrap_servers, settings.output_topic(analytic))
            table = settings.table_path(analytic)
            analytics[analytic] = {
                "topic": asdict(
                    latency.Percentiles.of(
                        latency.latencies(
                            analytic, latency.topic_rows(topic), settings.analytics, began
                        )
                    )
                ),
                "table": asdict(
                    latency.Percentiles.of(
                        latency.latencies(
                            analytic, latency.table_rows(table), settings.analytics, began
                        )
                        if table.exists()
                        else []
                    )
                ),
            }
        records = read_progress(state / "metrics")
        return {
            "rate": rate,
            "achieved_rate": round(stats.acknowledged / (ended - began)),
            "seconds": round(ended - began, 1),
            "trigger_seconds": trigger_seconds,
            "watermark_seconds": settings.analytics.watermark_seconds,
            "batch_ms": batch_durations(records),
            # CPU seconds of the application's process tree per wall second while producing.
            "cores": round(cores, 3),
            # The same, minute by minute: the JVM compiles Spark's code for minutes.
            "cores_per_minute": per_minute.cores,
            # The same by kind of thread (benchmarks/threads.py).
            "cores_by_thread": cpu_split,
            "breakdown": [asdict(b) for b in breakdown.breakdown(records, jobs)],
            # Rows still pending when the run was stopped are not counted: if the pipeline
            # fell behind, the true latency is higher than these figures.
            "fell_behind": behind,
            "analytics": analytics,
        }

    def scale(self) -> None:
        """(5) The same number of events over more and more distinct users."""
        runs = []
        for users in self.plan.scale_users:
            # A pipeline run with the same users and events is a point already measured.
            if found := self.scale_points.get((users, self.plan.scale_events)):
                result, records = found
            else:
                name = f"scale{users}"
                settings, _ = self.provisioned(name)
                events = self.spread_events(self.plan.scale_events, users)
                self.distinct_users[users] = len({e["user_id"] for e in events})
                producers.timed_platform_producer(
                    settings.bootstrap_servers, settings.kafka.input_topic, events, len(events)
                )
                del events
                result, records = self.run_app(f"{name}_run", name, AFTER, self.plan.scale_events)
            runs.append(
                {
                    "users": users,
                    "distinct_users": self.distinct_users[users],
                    "events": self.plan.scale_events,
                    "events_per_second": result.events_per_second,
                    **state_size(records),
                    "batch_ms": batch_durations(records),
                }
            )
            log.info("scale %d users: %s", users, runs[-1])
        self.results["scale"] = runs

    def profile(self) -> None:
        """Where the producer's time goes: py-spy samples a run of the platform producer."""
        self.make_topic("bench-profile")
        raw = self.out / "producer-profile.txt"
        count = min(self.plan.events, 300_000)
        command = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            str(raw),
            "--",
            sys.executable,
            "-m",
            "benchmarks.producers",
            self.settings.bootstrap_servers,
            "bench-profile",
            str(count),
        ]
        log.info("profiling the platform producer with py-spy (%d events)", count)
        subprocess.run(command, check=True, cwd=PROJECT_ROOT, capture_output=True, timeout=900)
        self.results["producer"]["profile"] = profile_summary(raw.read_text())

    # ------------------------------------------------------------------ all of it

    def run(self, skip: Sequence[str] = ()) -> dict:
        """Every stage in order but those in `skip` (of SKIPPABLE)."""
        began = time.monotonic()
        broker = Kafka(self.settings)
        broker.start()
        try:
            self.kafka_ceiling()
            self.producers()
            if self.plan.profile:
                self.profile()
                self.results["producer_levers"] = producer_levers.compare(
                    self.settings.bootstrap_servers, self.make_topic, 200_000, rounds=4
                )
            self.levers()
            self.pipeline()
            if "alone" not in skip:
                self.alone()
            self.latency()
            self.scale()
            if "at_rest" not in skip:
                self.at_rest()
        except BaseException:
            partial = self.out / "results.partial.json"
            partial.write_text(json.dumps(self.results, indent=2) + "\n")
            log.error("a stage failed; what was measured before it is in %s", partial)
            raise
        finally:
            broker.stop(timeout=30)
        self.results["seconds"] = round(time.monotonic() - began)
        self.results["machine"] = machine()
        self.results["targets"] = targets(self.results)
        return self.results


# ---------------------------------------------------------------------- progress readers


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its children so far, counting the
    children that have already ended (Hadoop runs `chmod` for every file it writes)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


class CoresPerMinute:
    """Samples a process tree's CPU each minute in a thread of its own (a with block)."""

    def __init__(self, pid: int, interval: float = 60.0) -> None:
        self.pid = pid
        self.interval = interval
        self.cores: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        last = cpu_seconds(self.pid)
        while not self._stop.wait(self.interval):
            now = cpu_seconds(self.pid)
            self.cores.append(round((now - last) / self.interval, 3))
            last = now

    def __enter__(self) -> CoresPerMinute:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def started_queries(state: Path) -> set[str]:
    return {r["name"] for r in read_progress(state / "metrics")}


def caught_up(state: Path, since: float, queries: Sequence[str] = ANALYTICS) -> bool:
    """Every query has run a batch that began after `since` and found nothing new, or, for
    a query without a watermark (nothing left to close), that read to the latest offset:
    Spark reports an idle stateless query to onQueryIdle, with no progress record."""
    latest: dict[str, dict] = {}
    for record in read_progress(state / "metrics"):
        latest[record["name"]] = record

    def done(record: dict) -> bool:
        if record["numInputRows"] == 0:
            return True
        return record.get("watermark") is None and all(
            source.get("offsetsBehindLatest") == 0 for source in record.get("sources", [])
        )

    return all(
        name in latest and _epoch(latest[name]["timestamp"]) > since and done(latest[name])
        for name in queries
    )


def wait_for(done, app: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if app.poll() is not None:
            raise RuntimeError(f"the streaming application exited {app.returncode} ({what})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(2)


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def batch_durations(records: list[dict]) -> dict[str, float]:
    """Batch duration of batches that read input: p50 and max over every query."""
    durations = [r["batchDurationMs"] for r in records if r["numInputRows"]]
    if not durations:
        return {"p50": 0, "max": 0, "batches": 0}
    return {
        "p50": round(statistics.median(durations)),
        "max": max(durations),
        "batches": len(durations),
    }


def state_size(records: list[dict]) -> dict[str, int]:
    """Peak state rows and memory per query (summed over its stateful operators), summed
    over the queries: what the application held at its fullest."""
    rows: dict[str, int] = {}
    memory: dict[str, int] = {}
    for record in records:
        operators = record.get("stateOperators") or []
        name = record["name"]
        rows[name] = max(rows.get(name, 0), sum(o["numRowsTotal"] for o in operators))
        memory[name] = max(memory.get(name, 0), sum(o["memoryUsedBytes"] for o in operators))
    return {
        "state_rows": sum(rows.values()),
        "state_memory_bytes": sum(memory.values()),
        "state_rows_by_query": rows,
    }


TIME_PARTS = ("latestOffset", "getBatch", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


def time_breakdown(records: list[dict]) -> dict[str, dict[str, float]]:
    """Per query, the share of its trigger time spent in each phase Spark reports
    (addBatch is the micro-batch's own jobs: read, parse, aggregate, write)."""
    shares = {}
    for name in sorted({r["name"] for r in records}):
        mine = [r["durationMs"] for r in records if r["name"] == name and r["numInputRows"]]
        total = sum(d.get("triggerExecution", 0) for d in mine)
        if total:
            shares[name] = {
                part: round(sum(d.get(part, 0) for d in mine) / total, 3) for part in TIME_PARTS
            } | {"trigger_seconds_total": round(total / 1000, 1)}
    return shares


def profile_summary(raw: str, top: int = 10) -> dict:
    """py-spy's raw (collapsed) stacks: the functions with the most samples on top of the
    stack, and the share of samples under generation, encoding and the Kafka client."""
    own: dict[str, int] = {}
    under = {"generate events": 0, "encode JSON": 0, "kafka-python": 0}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        if any("include/events.py" in f for f in frames):
            under["generate events"] += count
        elif any(re.search(r"[(/]json/", f) for f in frames):
            under["encode JSON"] += count
        elif any(re.search(r"[(/]kafka/", f) for f in frames):
            under["kafka-python"] += count
    ranked = sorted(own.items(), key=lambda item: -item[1])[:top]
    return {
        "samples": total,
        "share_under": {k: round(v / max(total, 1), 3) for k, v in under.items()},
        "top_own": [{"frame": f, "share": round(c / max(total, 1), 3)} for f, c in ranked],
    }


def targets(results: dict) -> list[dict]:
    """The issue's targets on this machine, and whether this run met them."""
    found = []
    producer = results.get("producer")
    if producer:
        rate = producer["platform"]["events_per_second"]
        found.append(_target("producer events/s", ">= 50,000", rate, rate >= 50_000))
        ratio = producer["ratio_platform_to_java"]
        found.append(_target("producer / Java producer", ">= 0.3", ratio, ratio >= 0.3))
    if results.get("pipeline"):
        rate = results["pipeline"]["events_per_second"]
        found.append(_target("pipeline events/s, all analytics", ">= 20,000", rate, rate >= 20_000))
        found.append(
            _target(
                "pipeline events/s from a backlog (real time)",
                f">= {BACKLOG_TARGET:,}",
                rate,
                rate >= BACKLOG_TARGET,
            )
        )
    # Real time: (rate, where, seconds) -- the worst analytic's p95, the app not behind.
    for rate, where, limit in ((2_000, "topic", 5), (2_000, "table", 15), (5_000, "topic", 10)):
        run = next((r for r in defaults_latency(results) if r["rate"] == rate), None)
        if run is None:
            continue
        name = f"latency p95 at {rate:,} events/s (worst analytic, {where}, not behind)"
        if "skipped" in run:
            found.append(_target(name, f"<= {limit} s", None, False))
            continue
        worst = latency.worst_p95(run, where)
        met = worst is not None and worst <= limit and not run.get("fell_behind")
        found.append(_target(name, f"<= {limit} s", worst, met))
    rest = results.get("at_rest")
    if not rest and results.get("mode") == FULL.mode:  # stage 6 skipped: its own run's
        rest = (published_stage("at_rest") or {}).get("runs", [])
    if run := defaults_at_rest(rest or []):
        cores = run["cores"]
        found.append(
            _target(
                f"streaming app cores at {run['rate']} events/s (make up)",
                f"<= {REST_CORES_TARGET}",
                cores,
                cores <= REST_CORES_TARGET,
            )
        )
    return found


def published_stage(stage: str) -> dict | None:
    """A stage's own published run (`python -m benchmarks.<stage>`, docs/benchmarks/), which
    a full run that skipped the stage shows instead."""
    separate = PUBLISHED / f"{stage}.json"
    return json.loads(separate.read_text()) if separate.exists() else None


def defaults_latency(results: dict) -> list[dict]:
    """Stage 4's runs of the platform's defaults (not the before rows beside them)."""
    return [r for r in results.get("latency", []) if r.get("label", AFTER.label) == AFTER.label]


def defaults_at_rest(runs: list[dict]) -> dict | None:
    """Stage 6's run of the platform's defaults at the `make up` trigger."""
    return next((r for r in runs if r["label"] == PER_BATCH_AFTER.label), None)


def _target(name: str, target: str, measured, met: bool) -> dict:
    return {"name": name, "target": target, "measured": measured, "met": met}


def machine() -> dict:
    from importlib.metadata import version

    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java.splitlines()[0] if java else "unknown",
        "kafka": jar_version("kafka", "kafka-clients-"),
        "pyspark": version("pyspark"),
        "kafka-python": version("kafka-python"),
        "delta-spark": jar_version("spark", "delta-spark_2.13-"),
    }


def jar_version(cache: str, prefix: str) -> str:
    """The version in a cached jar's name (the jars are what actually runs)."""
    jars = sorted((PROJECT_ROOT / ".cache" / "jars" / cache).glob(f"{prefix}*.jar"))
    return jars[0].stem.removeprefix(prefix) if jars else "unknown"


def console_logs() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)


def fresh_dir(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@contextmanager
def stage_alone(name: str, plan: Plan, driver_memory: str) -> Iterator[Bench]:
    """One stage run by itself (python -m benchmarks.<stage>): console logs, a fresh
    state/bench/<name>, and a broker of its own while the stage runs."""
    console_logs()
    bench = Bench(plan, fresh_dir(PROJECT_ROOT / "state" / "bench" / name), driver_memory)
    broker = Kafka(bench.settings)
    broker.start()
    try:
        yield bench
    finally:
        broker.stop(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help="the CI smoke: small numbers")
    parser.add_argument("--events", type=int, help="override the preloaded event count")
    parser.add_argument("--out", type=Path, help="working directory (default state/bench/<mode>)")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write BENCHMARKS.md and docs/benchmarks/ (default: in the full mode only)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=SKIPPABLE,
        help="leave a stage out: the report shows its own published run instead "
        "(`python -m benchmarks.alone`, about 30 minutes; `python -m benchmarks.at_rest`, 36)",
    )
    args = parser.parse_args(argv)
    console_logs()
    plan = SHORT if args.short else FULL
    if args.events:
        plan = replace(plan, events=args.events)
    out = fresh_dir((args.out or PROJECT_ROOT / "state" / "bench" / plan.mode).resolve())
    log.info("benchmarks (%s mode) in %s", plan.mode, out)
    results = Bench(plan, out, args.driver_memory).run(args.skip)

    from benchmarks import report

    publish = (plan.mode == "full") if args.publish is None else args.publish
    target_dir = PUBLISHED if publish else out
    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.plot(results, target_dir / "benchmarks.png")
    markdown = report.markdown(results, plot=target_dir / "benchmarks.png")
    (PROJECT_ROOT / "BENCHMARKS.md" if publish else out / "BENCHMARKS.md").write_text(markdown)
    print(report.summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
