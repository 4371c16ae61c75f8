"""How each stage of a benchmark run measures: one broker, one output directory, and the
stages in order (benchmarks/run.py's docstring says what each stage is for)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from kafka.admin import NewTopic

from benchmarks import client_variants, kafka_tools, producer_profile, producer_variants, producers
from benchmarks.designs import Variant, run_variant
from benchmarks.machine import machine
from benchmarks.plans import AFTER, SEED, Lever, Plan
from benchmarks.progress import batch_durations, state_size, time_breakdown
from benchmarks.steady import steady_run
from benchmarks.targets import targets
from include.contract import iso_utc
from include.generators import EventGenerator
from include.kafka.client import admin
from include.kafka.topics import provision
from include.runtime.kafka import Kafka
from include.runtime.procs import free_port
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.progress import read_progress

log = logging.getLogger("benchmarks.stages")

RECORD_SIZE = 300


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
            **plan.env,
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
        """Settings for a run of its own: input topic, output topics, dead letters, and the
        idle rule's control topic (another run's control records would move its clock)."""
        return {
            **self.env,
            "ECOM_KAFKA__INPUT_TOPIC": f"{name}-events",
            "ECOM_KAFKA__OUTPUT_TOPIC_PREFIX": f"{name}.",
            "ECOM_KAFKA__DEAD_LETTER_TOPIC": f"{name}-events-dlq",
            "ECOM_KAFKA__CONTROL_TOPIC": f"{name}-events-control",
        }

    def provisioned(self, name: str) -> tuple[Settings, dict[str, str]]:
        """A run's own topics created, its Settings and its environment (set here too)."""
        env = self.topic_env(name)
        os.environ.update(env)
        settings = Settings(state_dir=self.out / name)
        provision(settings)
        return settings, env

    def driver_conf(self, name: str) -> dict[str, str]:
        """The driver's Java Flight Recorder options when jfr_dir is set, else none."""
        if self.jfr_dir is None:
            return {}
        recording = self.jfr_dir / f"{name}.jfr"
        return {
            "spark.driver.extraJavaOptions": "-XX:FlightRecorderOptions:stackdepth=512 "
            f"-XX:StartFlightRecording=delay=60s,settings=profile,dumponexit=true,filename={recording}"
        }

    def make_topic(self, name: str) -> None:
        """A topic on the run's broker with the platform's partition count."""
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
        producer sends a slice of the same events to a topic of its own; then the Kafka
        clients side by side, each format, beside the Java producer."""
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
            "platform_client": producers.PLATFORM_CLIENT,
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
        del events  # the comparison's processes generate their own
        clients = client_variants.compare(
            self.settings, self.make_topic, self.plan.client_events, self.plan.client_rounds
        )
        log.info("the faster Kafka client: %s", client_variants.faster_client(clients))
        self.results["producer"]["clients"] = clients
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
        """A throughput run's results: the lever from the earliest offset of `topics`."""
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

    def run_app(self, label: str, topics: str, lever: Lever, count: int) -> tuple:
        """Run the lever's application until it has read `count` events of `topics`:
        designs.run_variant's result and the run's progress records."""
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
            # The rates the before row and the peer run at are targets: run them anyway, and
            # the run says whether the application fell behind.
            if rate > 0.9 * sustained and rate not in self.plan.latency_before_rates:
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
                    for n, lever in enumerate(self.plan.beside):
                        beside = self.latency_at(
                            rate,
                            lever,
                            f"latency{rate}_beside{n}",
                            trigger_seconds=lever.trigger_seconds,
                        )
                        runs.append({"label": lever.label, **beside})
        self.results["latency"] = runs

    def at_rest(self) -> None:
        """(6) The make-up default rate: the application's CPU and where a batch goes."""
        # Each run's figures are kept as soon as it ends: a later run that fails leaves them
        # in the partial results.
        runs = self.results["at_rest"] = []
        for n, lever in enumerate(self.plan.rest_levers):
            run = self.latency_at(
                self.plan.rest_rate,
                lever,
                f"rest{n}",
                # `make up`'s trigger, not the latency runs' short one.
                trigger_seconds=lever.trigger_seconds or self.settings.spark.trigger_seconds,
                seconds=lever.seconds or self.plan.rest_seconds,
            )
            runs.append({"label": lever.label, "settings": lever.env, **run})

    def latency_at(
        self,
        rate: int,
        lever: Lever = AFTER,
        name: str = "",
        trigger_seconds: int | None = None,
        seconds: float | None = None,
    ) -> dict:
        """A steady-rate run of `lever` on topics of its own (default: the plan's trigger
        and seconds)."""
        name = name or f"latency{rate}"
        settings, env = self.provisioned(name)
        return steady_run(
            settings,
            {**env, **lever.env},
            self.out / name,
            lever,
            rate,
            trigger_seconds=trigger_seconds or self.plan.trigger_seconds,
            seconds=seconds or self.plan.latency_seconds,
            driver_memory=self.driver_memory,
            driver_conf=self.driver_conf(name),
            idle_watch_seconds=self.plan.idle_watch_seconds,
        )

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
        count = min(self.plan.events, 300_000)
        log.info("profiling the platform producer with py-spy (%d events)", count)
        raw = producer_profile.record(
            self.settings.bootstrap_servers,
            "bench-profile",
            count,
            self.out / "producer-profile.txt",
        )
        self.results["producer"]["profile"] = producer_profile.profile_summary(raw)

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
                self.results["producer_levers"] = producer_variants.compare(
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


def console_logs() -> None:
    """Log lines with time and logger on the console; kafka-python's errors only."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)


def fresh_dir(out: Path) -> Path:
    """`out`, emptied of an earlier run's files."""
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
    except BaseException:
        partial = bench.out / "results.partial.json"
        partial.write_text(json.dumps(bench.results, indent=2) + "\n")
        log.error("the stage failed; what was measured before it is in %s", partial)
        raise
    finally:
        broker.stop(timeout=30)
