"""The platform end to end, the way a user runs it from the README.

1. `make up` brings PostgreSQL, Kafka and Airflow up on free ports in a fresh state dir
   (ECOM_AUTOSTART=0: this test triggers the DAGs itself, through the REST API).
2. Log in with the printed admin credentials: POST /auth/token -> access_token.
3. Trigger provision_topics and wait for success: the event schema's versions are in the
   registry `make up` started; nothing streams yet, and the supervisor and
   `make status` say "not-started", not "dead".
4. Trigger producer (long-running, in the tutorial's own event format: zone-less times read
   in Europe/Berlin, quantity 0 on views, float revenue, snappy) and streaming
   (SparkSubmitOperator), wait until running.
5. Wait for closed revenue windows in the Delta sink table; every row of every sink table
   must equal an independent computation over the events read back from the input topic.
   The table_maintenance DAG compacts and vacuums the tables while the stream writes, and
   every row still equals the oracle.  `make status` shows every query running and exits 0;
   the restart DAG has run no slot from before the platform started.
6. Trigger data_quality (full) and wait for success; its task's Quality report link opens
   its results in the plugin, which refuses callers without a login.  The Prometheus
   endpoint answers its own token only, with the state files' figures; the health page links
   the Spark UI, which serves Spark's own metrics.
7. The scheduled restart DAG, run at once, stops the driver gracefully and starts one
   (the time is measured: state/restart-timings.json).
8. Stop the producer run; a second, short producer run (Avro records of the schema
   provision_topics registered) ends by itself.
9. A short fault campaign (tests/chaos/, what `make chaos` runs): one SIGKILL of the
   driver, one SIGSTOP, one Kafka broker restart, one Airflow scheduler restart, while
   tutorial-format events and malformed records stream in; the supervisor DAG, on its
   10-second schedule, does every restart.  Then page views far ahead close every window
   and session: all five tables have rows, none lost, duplicated or wrong against the
   oracle, and every malformed record is exactly one dead letter.  Alerts: none before the
   faults; after them the frozen driver's restart and the dead letters reached a real webhook
   receiver and a real SMTP server, each with the health page's link.  A backfill created
   through the REST API (the README's way) runs although the DAG's own schedule is off, and
   its Reconciliation page (linked from its task) shows no difference with the stream.
10. `make down`: no platform process is left, the ports are free again, data is kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests

from include.event_schema import latest_version
from include.registry import subject_versions
from include.runtime.airflow_api import AirflowApi
from include.runtime.procs import free_port, marked_processes, port_answers
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.health import State
from include.streaming.lease import read_holder
from tests.chaos.campaign import run_campaign
from tests.chaos.faults import Plan
from tests.chaos.own_platform import platform_env
from tests.chaos.report import markdown, summary
from tests.conftest import poll
from tests.e2e.alerts import (
    AlertReceivers,
    alert_receivers,
    check_alerts_after_campaign,
    check_silent_before_faults,
)
from tests.e2e.backfill import check_backfill_runs
from tests.e2e.care import check_table_maintenance
from tests.e2e.metrics import check_metrics
from tests.e2e.pipeline import (
    Laps,
    assert_no_restart_of_a_past_slot,
    assert_pipeline_shows,
    assert_tables_equal_oracle,
    make,
    read_revenue,
    restarted_by,
)

pytestmark = pytest.mark.e2e

EXPECTED_RATE = 40  # events/s: enough purchases per window, light on 2 cores
EXPECTED_WATERMARK_SECONDS = 10
# 20-second revenue windows every 10 s: the first closes ~30 s after the first event (the
# shipped 1-minute window would take ~70 s), and the oracle computes the same windows.
EXPECTED_REVENUE_WINDOW_SECONDS, EXPECTED_REVENUE_SLIDE_SECONDS = 20, 10
# The tutorial's 100 users click every ~2.5 s at 40 events/s: their sessions close only
# when the events stop for longer than this gap (the campaign's closing page views move the
# watermark past it).
EXPECTED_SESSION_GAP_SECONDS = 30
EXPECTED_NAIVE_ZONE = "Europe/Berlin"
UP_TIMEOUT = 600
FIRST_ROWS_TIMEOUT = 420
SUPERVISOR_INTERVAL_SECONDS = 10


@dataclass
class Platform:
    """The running platform: its settings and environment, what `make up` printed, when it
    was started, and the alert receivers it was pointed at."""

    settings: Settings
    env: dict[str, str]
    up_stdout: str
    started: datetime
    alerts: AlertReceivers


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    state = tmp_path_factory.mktemp("e2e_state")
    with alert_receivers() as alerts:
        env = {
            **os.environ,
            **platform_env(state, SUPERVISOR_INTERVAL_SECONDS),
            **alerts.env,
            "ECOM_ANALYTICS__WATERMARK_SECONDS": str(EXPECTED_WATERMARK_SECONDS),
            "ECOM_ANALYTICS__SESSION_GAP_SECONDS": str(EXPECTED_SESSION_GAP_SECONDS),
            "ECOM_ANALYTICS__REVENUE_WINDOW_SECONDS": str(EXPECTED_REVENUE_WINDOW_SECONDS),
            "ECOM_ANALYTICS__REVENUE_SLIDE_SECONDS": str(EXPECTED_REVENUE_SLIDE_SECONDS),
            "ECOM_EVENTS__NAIVE_TIMEZONE": EXPECTED_NAIVE_ZONE,
            "ECOM_SPARK__TRIGGER_SECONDS": "5",
            # A transactional call stuck since the broker restart is given up sooner (30 s
            # shipped): the campaign's recovery, not what it proves, is shorter.
            "ECOM_KAFKA__TRANSACTION_CALL_TIMEOUT_SECONDS": "10",
            # Five-minute backfill intervals: Airflow backfills only intervals that have
            # ended, and this test streams for minutes, not hours.
            "ECOM_BACKFILL__SCHEDULE": "*/5 * * * *",
            # Vacuum what compaction replaced at once (24 h shipped): under a live writer.
            "ECOM_MAINTENANCE__VACUUM_RETENTION_HOURS": "0",
            # Its own port: another driver on this machine may hold Spark's default 4040.
            "ECOM_SPARK__UI_PORT": str(free_port()),
        }
        started = datetime.now(UTC)
        up = make("up", env, UP_TIMEOUT)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield Platform(Settings(), env, up.stdout, started, alerts)
        finally:
            down = subprocess.run(
                ["make", "down"],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            print(down.stdout)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def admin_password(up_stdout: str) -> str:
    line = next(ln for ln in up_stdout.splitlines() if "password:" in ln)
    return line.split("password:")[1].strip()


def test_platform_end_to_end(platform):
    lap = Laps(platform.settings.state / "step-timings.json")
    settings, env, up_stdout, alerts = (
        platform.settings,
        platform.env,
        platform.up_stdout,
        platform.alerts,
    )
    assert "The platform is up." in up_stdout
    api = AirflowApi(
        f"http://{settings.bind_host}:{settings.airflow.port}",
        settings.airflow.admin_user,
        admin_password(up_stdout),
    )
    api.login()
    # The UI and API are behind the login: no anonymous access, no wrong password.
    base = f"http://{settings.bind_host}:{settings.airflow.port}"
    assert requests.get(f"{base}/api/v2/dags", timeout=10).status_code == 401
    bad = requests.post(
        f"{base}/auth/token", json={"username": "admin", "password": "x"}, timeout=10
    )
    assert bad.status_code == 401

    # Data and logs are kept from other local users (umask 027; PostgreSQL's user may only
    # pass through the state dir to its own folder).
    for path in (settings.state, settings.paths.log_dir, settings.paths.log_dir / "kafka.log"):
        assert path.stat().st_mode & 0o026 == 0, f"{path} is {oct(path.stat().st_mode)}"

    lap("2. login and file modes")

    # 3. topics
    run = api.trigger("provision_topics")
    assert api.wait_for_run("provision_topics", run, {"success"}, timeout=240) == "success"
    # ...and the event schema: every version of the file, under the file's numbers.
    held = subject_versions(settings)
    assert [r.version for r in held] == list(range(1, latest_version() + 1)), held

    # Nothing streams yet: the supervisor says "not-started", never "dead ... restarting",
    # and `make status` (which exits 1 on a dead or stalled query) agrees.
    assert_pipeline_shows(settings, env, {State.NOT_STARTED})

    lap("3. topics")

    # 4. producer and streaming, both long-running
    tutorial = {"rate": EXPECTED_RATE, "seed": 7, "event_format": "tutorial"}
    producer_run = api.trigger("producer", {**tutorial, "duration_seconds": 0})
    api.wait_for_task_state("producer", producer_run, "produce_events", {"running"}, timeout=240)
    streaming_run = api.trigger("streaming")
    api.wait_for_task_state(
        "streaming", streaming_run, "run_streaming_app", {"running"}, timeout=240
    )

    # Idempotent: a second `make up` starts nothing twice; status sees every service.
    pids = {f.name: f.read_text() for f in settings.paths.run_dir.glob("*.pid")}
    state_mode = settings.state.stat().st_mode
    again = make("up", env, UP_TIMEOUT)
    # ...nor takes away what the running services need (PostgreSQL's user crosses the
    # state dir to its data: a second `make up` once locked it out).
    assert settings.state.stat().st_mode == state_mode
    # PostgreSQL, Kafka, the registry, Airflow's four components, the Spark History Server.
    assert again.stdout.count("already running") == len(pids) == 8, again.stdout
    assert {f.name: f.read_text() for f in settings.paths.run_dir.glob("*.pid")} == pids
    status = make("status", env, 60)
    assert status.stdout.count(" yes") == 8, status.stdout

    lap("4. producer and streaming")

    # 5. closed windows reach the sink, each equal to the oracle over the input topic
    def sink_rows() -> pd.DataFrame:
        # Fail at once, not at the timeout, when the streaming task is failing.
        states = {
            ti["task_id"]: ti["state"] for ti in api.task_instances("streaming", streaming_run)
        }
        assert states.get("run_streaming_app") == "running", (
            f"streaming task is {states}; see its log under {settings.paths.log_dir / 'airflow'}"
        )
        return read_revenue(settings)

    poll(
        sink_rows,
        lambda df: len(df) >= 3,
        "closed revenue windows in the Delta table",
        FIRST_ROWS_TIMEOUT,
        interval=5,
    )
    assert_tables_equal_oracle(settings, {"revenue_by_category"})
    # Compaction and vacuum while the stream writes change no row (the restart in step 7
    # then resumes on tables last checkpointed by delta-rs).
    check_table_maintenance(api, settings, env)
    # Its hourly run, with this test's 0-hour vacuum, would delete files under the backfill's
    # reads in step 9 (a run at minute 17 once failed the backfill's first try: +5 minutes).
    api.pause("table_maintenance")
    assert_tables_equal_oracle(settings, {"revenue_by_category"})
    assert_pipeline_shows(settings, env, {State.RUNNING, State.LAGGING})
    assert_no_restart_of_a_past_slot(api, platform.started)

    lap("5. sink rows, maintenance")

    # 6. the quality DAG checks every table; its task links to its report in the plugin
    quality_run = api.trigger("data_quality", {"full": True})
    assert api.wait_for_run("data_quality", quality_run, {"success"}, timeout=300) == "success"
    assert (
        settings.paths.quality_dir
        / "gx"
        / "uncommitted"
        / "data_docs"
        / "local_site"
        / "index.html"
    ).exists()
    link = api.task_links("data_quality", quality_run, "check_sink_tables")["Quality report"]
    report = api.page(link)
    assert report.status_code == 200 and 'id="run-status"' in report.text, report.text[:500]
    assert "revenue_by_category" in report.text
    health = api.page("/ecom/health")
    assert health.status_code == 200 and 'data-query="revenue_by_category"' in health.text
    assert f"version {latest_version()} (id {held[-1].schema_id})" in health.text
    assert requests.get(f"{api.base_url}/ecom/health", timeout=30).status_code == 401
    check_metrics(api, settings, env)

    # Quality runs follow every table update; the supervisor now looks every 10 s.
    api.pause("data_quality")

    lap("6. quality, pages, metrics")

    # 7. The scheduled restart, run now: a graceful stop, then a new streaming run.
    running = read_holder(settings.paths.pipeline_checkpoint)
    asked = time.monotonic()
    timings = {
        "scheduled graceful restart": restarted_by(
            api, settings, running, asked, dag_id="streaming_restart"
        )
    }
    (settings.state / "restart-timings.json").write_text(json.dumps(timings))
    print("\n".join(f"{what}: {secs:.0f} s" for what, secs in timings.items()))

    lap("7. scheduled restart")

    # 8. Stop the long-running producer; a run with a duration ends by itself.
    api.finish_run("producer", producer_run, note="replaced by the fault campaign's stream")
    # The second run writes Avro of the registered schema: the oracle reads both formats.
    avro = {"rate": EXPECTED_RATE, "seed": 8, "event_format": "avro", "duration_seconds": 5}
    second_run = api.trigger("producer", avro)
    assert api.wait_for_run("producer", second_run, {"success"}, timeout=240) == "success"

    # Start, quality and the scheduled restart: all was well, nobody was alerted.
    check_silent_before_faults(alerts)

    lap("8. producer runs")

    # 9. A short fault campaign; recovery is the supervisor's, on its schedule.
    report = run_campaign(
        settings,
        api,
        Plan(kills=1, freezes=1, broker_restarts=1, scheduler_restarts=1),
        rate=EXPECTED_RATE,
        max_pause=2,
        settle_seconds=10,
    )
    (settings.state / "chaos.md").write_text(markdown(report, "tests/e2e"))
    print(summary(report))
    assert sorted(f.kind for f in report.faults) == ["broker", "freeze", "kill", "scheduler"]
    assert report.unrecovered == 0, [f for f in report.faults]
    assert report.streaming_runs_started >= 2, "the kill and the freeze need new runs"
    for table in report.tables:
        assert table.expected > 0 and table.written == table.expected, table
        assert (table.lost, table.duplicated, table.wrong, table.unexplained) == (0, 0, 0, 0)
    letters = report.dead_letters
    assert letters.malformed_sent > 0 and letters.exactly_once == letters.malformed_sent
    assert letters.not_malformed == 0
    assert report.ok
    # The frozen driver's restart and the malformed records' dead letters were alerted.
    check_alerts_after_campaign(alerts, settings)
    # The README's backfill runs with the hourly schedule off; its page shows no difference.
    check_backfill_runs(api, settings)

    # The supervisor's and the restart DAG's stops were graceful: the frozen driver, woken
    # up, and the scheduled restart's both ended at a batch boundary.
    stops = [
        line
        for dag_id in ("supervisor", "streaming_restart")
        for path in (settings.paths.log_dir / "airflow" / f"dag_id={dag_id}").rglob("*.log")
        for line in path.read_text().splitlines()
        if "driver pid" in line and "stop" in line
    ]
    assert sum("stopped at a batch boundary" in line for line in stops) >= 2, stops
    assert not [line for line in stops if "hard-killed" in line], stops

    written = [
        settings.paths.table_path("revenue_by_category"),
        *settings.paths.table_path("revenue_by_category").glob("*.parquet"),
        *(settings.paths.log_dir / "airflow").rglob("*.log"),
        settings.paths.metrics_dir / "progress.jsonl",
    ]
    loose = [f"{p} {oct(p.stat().st_mode)}" for p in written if p.stat().st_mode & 0o027]
    assert not loose, loose

    lap("9. fault campaign, alerts, backfill")

    # 10. stop everything; nothing of ours survives
    make("down", env, 300)
    assert marked_processes(str(settings.state)) == []
    for port in (settings.kafka.port, settings.postgres.port, settings.airflow.port):
        assert not port_answers(settings.bind_host, port), f"port {port} still answers"
    assert Path(settings.paths.table_path("revenue_by_category")).exists(), "data must be kept"
    lap("10. make down")
