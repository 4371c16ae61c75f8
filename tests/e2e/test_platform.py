"""The platform end to end, the way a user runs it from the README.

1. `make up` brings PostgreSQL, Kafka and Airflow up on free ports in a fresh state dir
   (ECOM_AUTOSTART=0: this test triggers the DAGs itself, through the REST API).
2. Log in with the printed admin credentials: POST /auth/token -> access_token.
3. Trigger provision_topics and wait for success.
4. Trigger producer (long-running, in the tutorial's own event format: zone-less times read
   in Europe/Berlin, quantity 0 on views, float revenue, snappy) and streaming
   (SparkSubmitOperator), wait until running.
5. Wait for closed revenue windows in the Delta sink table; every row of every sink table
   must equal an independent computation over the events read back from the input topic.
6. Trigger data_quality (full) and wait for success; its task's Quality report link opens
   its results in the plugin, which refuses callers without a login.
7. kill -9 the driver: the streaming run fails, the supervisor DAG starts a new driver.
8. SIGSTOP the new driver: the supervisor finds it frozen, stops it and starts another;
   then the scheduled restart DAG, run at once, stops the driver gracefully and starts one.
   The times are measured (state/restart-timings.json).
9. Stop the producer, stay silent longer than the (shortened) session gap, produce again:
   sessions close, and all five tables have rows, every one equal to the oracle.
10. `make down`: no platform process is left, the ports are free again, data is kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import requests

from include.checkpoints import inspect
from include.driver_lease import Holder, live_holder, read_holder
from include.kafka_client import end_offsets, read_to_end
from include.runtime.airflow_api import AirflowApi
from include.runtime.procs import free_port, marked_processes, port_answers
from include.settings import PROJECT_ROOT, Settings
from include.tables import read_table
from tests.conftest import poll
from tests.integration.dataset import ORACLES, expected_of, normalise

pytestmark = pytest.mark.e2e

EXPECTED_RATE = 40  # events/s: enough purchases per window, light on 2 cores
EXPECTED_WATERMARK_SECONDS = 10  # closes the first 1-minute window ~70 s after the first event
# The tutorial's 100 users click every ~2.5 s at 40 events/s: their sessions close only in
# a pause of the producer longer than this gap.
EXPECTED_SESSION_GAP_SECONDS = 30
EXPECTED_NAIVE_ZONE = "Europe/Berlin"
ALL_TABLES = set(ORACLES)
UP_TIMEOUT = 600
FIRST_ROWS_TIMEOUT = 420
FROZEN_AFTER_SECONDS = 15  # lease heartbeat age that makes a driver "frozen"


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["make", target], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"make {target} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    state = tmp_path_factory.mktemp("e2e_state")
    env = {
        **os.environ,
        "ECOM_STATE_DIR": str(state),
        "ECOM_KAFKA__PORT": str(free_port()),
        "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        "ECOM_POSTGRES__PORT": str(free_port()),
        "ECOM_AIRFLOW__PORT": str(free_port()),
        "ECOM_ANALYTICS__WATERMARK_SECONDS": str(EXPECTED_WATERMARK_SECONDS),
        "ECOM_ANALYTICS__SESSION_GAP_SECONDS": str(EXPECTED_SESSION_GAP_SECONDS),
        "ECOM_EVENTS__NAIVE_TIMEZONE": EXPECTED_NAIVE_ZONE,
        "ECOM_SPARK__TRIGGER_SECONDS": "5",
        "ECOM_AUTOSTART": "0",
        "ECOM_SUPERVISOR__FROZEN_AFTER_SECONDS": str(FROZEN_AFTER_SECONDS),
    }
    up = make("up", env, UP_TIMEOUT)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = Settings()
    try:
        yield settings, env, up.stdout
    finally:
        down = subprocess.run(
            ["make", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
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


def read_revenue(settings: Settings) -> pd.DataFrame:
    frame = read_table(settings.table_path("revenue_by_category"))
    return pd.DataFrame() if frame is None else frame


def read_input_events(settings: Settings) -> list[dict]:
    records = read_to_end(settings.bootstrap_servers, settings.kafka.input_topic)
    return [json.loads(r.value) for r in records]


def assert_tables_equal_oracle(settings: Settings, must_have_rows: set[str]) -> None:
    """Every row of every sink table equals the oracle's row for its key, computed over the
    events in the input topic, and no key is written twice.  Tables still waiting for their
    first closed window (5-minute windows, 30-minute sessions) may be empty, except those
    in `must_have_rows`."""
    events = read_input_events(settings)
    for analytic, (_, order) in ORACLES.items():
        got = read_table(settings.table_path(analytic))
        if got is None or got.empty:
            assert analytic not in must_have_rows, f"{analytic} has no rows"
            continue
        got = normalise(got, order)
        assert not got.duplicated(order).any(), f"{analytic}: a row written twice"
        expected = normalise(expected_of(analytic, events, settings), order)
        matched = expected.merge(got[order], on=order, how="inner")
        assert len(matched) == len(got), f"{analytic}: sink rows the oracle does not have"
        pd.testing.assert_frame_equal(
            got[list(expected.columns)], matched[list(expected.columns)], check_dtype=False
        )


def row_counts(settings: Settings) -> dict[str, int]:
    """Committed rows per analytic table (0 before its first commit)."""
    tables = {a: read_table(settings.table_path(a)) for a in ALL_TABLES}
    return {a: 0 if frame is None else len(frame) for a, frame in tables.items()}


def steady_for(seconds: float):
    """A poll condition: the polled value has not changed for `seconds`."""
    seen: dict[str, object] = {}

    def steady(value: object) -> bool:
        now = time.monotonic()
        if seen.get("value") != value:
            seen.update(value=value, since=now)
        return now - float(seen["since"]) >= seconds

    return steady


def restarted_by(
    api: AirflowApi, settings: Settings, old: Holder, since: float, dag_id: str = "supervisor"
) -> float:
    """Run `dag_id` until a new driver holds the checkpoint and has committed a batch; the
    seconds from `since` (time.monotonic() when the driver died or froze)."""
    checkpoint = settings.checkpoint_path("revenue_by_category")
    committed = inspect(checkpoint).last_committed or -1

    def new_driver() -> Holder | None:
        holder = live_holder(checkpoint)
        return holder if holder and holder.pid != old.pid else None

    run = api.trigger(dag_id)
    assert api.wait_for_run(dag_id, run, {"success"}, timeout=400) == "success"
    poll(new_driver, lambda h: h is not None, "a new driver on the checkpoints", timeout=240)
    poll(
        lambda: inspect(checkpoint).last_committed or -1,
        lambda last: last > committed,
        "a batch committed by the new driver",
        timeout=240,
    )
    return time.monotonic() - since


def test_platform_end_to_end(platform):
    settings, env, up_stdout = platform
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
    for path in (settings.state, settings.log_dir, settings.log_dir / "kafka.log"):
        assert path.stat().st_mode & 0o026 == 0, f"{path} is {oct(path.stat().st_mode)}"

    # 3. topics
    run = api.trigger("provision_topics")
    assert api.wait_for_run("provision_topics", run, {"success"}, timeout=240) == "success"

    # 4. producer and streaming, both long-running
    tutorial = {"rate": EXPECTED_RATE, "seed": 7, "event_format": "tutorial"}
    producer_run = api.trigger("producer", {**tutorial, "duration_seconds": 0})
    api.wait_for_task_state("producer", producer_run, "produce_events", {"running"}, timeout=240)
    streaming_run = api.trigger("streaming")
    api.wait_for_task_state(
        "streaming", streaming_run, "run_streaming_app", {"running"}, timeout=240
    )

    # Idempotent: a second `make up` starts nothing twice; status sees every service.
    pids = {f.name: f.read_text() for f in settings.run_dir.glob("*.pid")}
    again = make("up", env, UP_TIMEOUT)
    assert again.stdout.count("already running") == len(pids) == 6, again.stdout
    assert {f.name: f.read_text() for f in settings.run_dir.glob("*.pid")} == pids
    status = make("status", env, 60)
    assert status.stdout.count(" yes") == 6, status.stdout

    # 5. closed windows reach the sink, each equal to the oracle over the input topic
    def sink_rows() -> pd.DataFrame:
        # Fail at once, not at the timeout, when the streaming task is failing.
        states = {
            ti["task_id"]: ti["state"] for ti in api.task_instances("streaming", streaming_run)
        }
        assert states.get("run_streaming_app") == "running", (
            f"streaming task is {states}; see its log under {settings.log_dir / 'airflow'}"
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

    # 6. the quality DAG checks every table; its task links to its report in the plugin
    quality_run = api.trigger("data_quality", {"full": True})
    assert api.wait_for_run("data_quality", quality_run, {"success"}, timeout=300) == "success"
    assert (
        settings.quality_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    ).exists()
    link = api.task_links("data_quality", quality_run, "check_sink_tables")["Quality report"]
    report = api.page(link)
    assert report.status_code == 200 and 'id="run-status"' in report.text, report.text[:500]
    assert "revenue_by_category" in report.text
    health = api.page("/ecom/health")
    assert health.status_code == 200 and 'data-query="revenue_by_category"' in health.text
    assert requests.get(f"{api.base_url}/ecom/health", timeout=30).status_code == 401

    # 7. chaos: kill -9 the driver (Python and its JVM); the supervisor starts a new one
    driver = read_holder(settings.checkpoint_path("revenue_by_category"))
    assert driver is not None
    jvm = psutil.Process(driver.pid).parent()
    died = time.monotonic()
    for proc in (psutil.Process(driver.pid), jvm):
        proc.kill()
    assert api.wait_for_run("streaming", streaming_run, {"failed"}, timeout=180) == "failed"
    timings = {
        "kill -9 to a healthy restart (supervisor run at once)": restarted_by(
            api, settings, driver, died
        )
    }

    # 8. stall: SIGSTOP the new driver; classified stalled, stopped, restarted
    frozen = read_holder(settings.checkpoint_path("revenue_by_category"))
    froze = time.monotonic()
    os.kill(frozen.pid, signal.SIGSTOP)
    time.sleep(FROZEN_AFTER_SECONDS + 5)
    timings["SIGSTOP to a healthy restart (heartbeat limit 15 s)"] = restarted_by(
        api, settings, frozen, froze
    )

    # The scheduled restart, run now: a graceful stop, then a new streaming run.
    running = read_holder(settings.checkpoint_path("revenue_by_category"))
    asked = time.monotonic()
    timings["scheduled graceful restart"] = restarted_by(
        api, settings, running, asked, dag_id="streaming_restart"
    )
    (settings.state / "restart-timings.json").write_text(json.dumps(timings))
    # Both stops were graceful: the drivers, busy catching up, ended at a batch boundary.
    stops = [
        line
        for dag_id in ("supervisor", "streaming_restart")
        for path in (settings.log_dir / "airflow" / f"dag_id={dag_id}").rglob("*.log")
        for line in path.read_text().splitlines()
        if "driver pid" in line and "stop" in line
    ]
    # At least 2: a scheduled supervisor or restart run may stop a driver too.
    assert sum("stopped at a batch boundary" in line for line in stops) >= 2, stops
    assert not [line for line in stops if "hard-killed" in line], stops
    print("\n".join(f"{what}: {secs:.0f} s" for what, secs in timings.items()))

    # 9. A pause longer than the session gap, then more events: the sessions close.
    api.finish_run("producer", producer_run, note="a pause, so that sessions close")
    poll(
        lambda: end_offsets(settings.bootstrap_servers, settings.kafka.input_topic),
        steady_for(10),
        "the producer to stop sending",
        timeout=120,
    )
    time.sleep(EXPECTED_SESSION_GAP_SECONDS + 10)
    rows_before = len(read_revenue(settings))
    second_run = api.trigger("producer", {**tutorial, "seed": 8, "duration_seconds": 90})
    poll(
        lambda: row_counts(settings),
        lambda counts: all(counts.values()) and counts["revenue_by_category"] > rows_before,
        "rows in all five tables",
        FIRST_ROWS_TIMEOUT,
        interval=5,
    )
    # Still exact: every table, with the windows closed across the restarts, equals the oracle.
    assert_tables_equal_oracle(settings, ALL_TABLES)
    assert api.wait_for_run("producer", second_run, {"success"}, timeout=240) == "success"

    written = [
        settings.table_path("revenue_by_category"),
        *settings.table_path("revenue_by_category").glob("*.parquet"),
        *(settings.log_dir / "airflow").rglob("*.log"),
        settings.metrics_dir / "progress.jsonl",
    ]
    loose = [f"{p} {oct(p.stat().st_mode)}" for p in written if p.stat().st_mode & 0o027]
    assert not loose, loose

    # 10. stop everything; nothing of ours survives
    make("down", env, 300)
    assert marked_processes(str(settings.state)) == []
    for port in (settings.kafka.port, settings.postgres.port, settings.airflow.port):
        assert not port_answers(settings.bind_host, port), f"port {port} still answers"
    assert Path(settings.table_path("revenue_by_category")).exists(), "data must be kept"
