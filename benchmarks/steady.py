"""One steady-rate run: the streaming application and the platform's producer together at
a fixed input rate, measuring the application's CPU, where each query's micro-batch goes
and how long each analytic's rows take to become visible (stages 4 and 6)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

from benchmarks import breakdown, latency, peer, threads
from benchmarks.cpu import CoresPerMinute, cpu_seconds
from benchmarks.plans import SEED, Lever
from benchmarks.progress import (
    batch_durations,
    caught_up,
    read_up_to,
    started_queries,
    wait_for,
)
from include.analytics import ANALYTICS
from include.kafka.client import end_offsets
from include.producer import ProducerParams, run_producer
from include.runtime.procs import free_port, stop_tree
from include.runtime.spark_launch import launch_app
from include.settings import Settings
from include.streaming.progress import read_progress

log = logging.getLogger("benchmarks.steady")

# The outputs with event-time windows: each has a window_start and a window_end.
WINDOWED_NAMES = tuple(a.name for a in ANALYTICS if a.windowed)

# How long a latency run may take to work off its backlog once the input stops.
DRAIN_SECONDS = 180


def steady_run(
    settings: Settings,
    env: dict[str, str],
    state: Path,
    lever: Lever,
    rate: int,
    *,
    trigger_seconds: int,
    seconds: float,
    driver_memory: str,
    driver_conf: dict[str, str],
    idle_watch_seconds: float,
) -> dict:
    """Run `lever`'s application on provisioned topics (`settings`, `env`) with its state in
    `state`, produce `rate` events/s for `seconds`, wait for the backlog, and measure."""
    name = state.name
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
        driver_memory=driver_memory,
        # The REST API the breakdown reads, remembering every job of the run.
        conf={
            "spark.ui.port": ui.rpartition(":")[2],
            "spark.ui.retainedJobs": "1000000",
            "spark.ui.retainedStages": "1000000",
            **driver_conf,
        },
    )
    try:
        wait_for(lambda: started_queries(state) >= set(lever.queries), app, 300, "queries start")
        cpu_before = cpu_seconds(app.pid)
        reading = threads.Reading.of(app.pid, cpu_before)
        log.info("%s at %d events/s (%s): producing for %.0f s", name, rate, lever.label, seconds)
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
        cpu_split = threads.split(reading, threads.Reading.of(app.pid, cpu_after), ended - began)
        if lever.design == "tutorial":
            # Update mode: the last events' rows leave in the batch that reads them.
            topic = settings.kafka.input_topic
            sent = sum(end_offsets(settings.bootstrap_servers, topic)[topic].values())
            drained = partial(read_up_to, state, topic, sent, lever.queries)
        else:
            drained = partial(caught_up, state, ended, lever.queries)
        try:
            wait_for(drained, app, DRAIN_SECONDS, "the backlog")
            behind = None
        except TimeoutError:
            behind = f"still behind {DRAIN_SECONDS} s after the input stopped"
            log.info("latency at %d events/s: %s; stopping it anyway", rate, behind)
        if lever.idle_watch:
            watch = ended + settings.analytics.idle_close_seconds + idle_watch_seconds
            log.info(
                "%s: watching the idle rule close the last windows for %.0f s",
                name,
                max(0.0, watch - time.time()),
            )
            wait_for(lambda: time.time() >= watch, app, DRAIN_SECONDS, "the idle rule")
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
    if lever.design == "tutorial":
        # The peer's topics: update-mode rows, per window from its end (benchmarks/peer.py).
        analytics, windows = {}, peer.measured(settings, lever.queries, began, ended)
    else:
        analytics = latency.measured(settings, began, ended, idle=lever.idle_watch)
        windows = peer.measured(settings, WINDOWED_NAMES, began, ended)
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
        # The driver's memory while producing: its process tree's RSS, its JVM's used heap.
        "memory": per_minute.memory(),
        # The same by kind of thread (benchmarks/threads.py).
        "cores_by_thread": cpu_split,
        "breakdown": [asdict(b) for b in breakdown.breakdown(records, jobs)],
        # Rows still pending when the run was stopped are not counted: if the pipeline
        # fell behind, the true latency is higher than these figures.
        "fell_behind": behind,
        "analytics": analytics,
        # Per windowed output, from a window's end to the first record with its final value:
        # the measure the peer row (the tutorial's update-mode queries) is compared by.
        "windows": windows,
    }
