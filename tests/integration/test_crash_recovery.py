"""kill -9 the streaming driver mid-stream, then again in the middle of a batch's topic
write, then SIGTERM it while it is still busy; the sinks still equal the oracle.

1. A separate state dir and topics; the seeded data set of tests/integration/dataset.py.
2. Run the pipeline with small micro-batches (800 offsets), so the data takes 7 batches.
3. SIGKILL the whole spark-submit process group after the query has committed KILL_POINT
   batches; start again on the same checkpoint.  A kill can land anywhere: mid-batch,
   between a batch's Delta commits and its checkpoint commit, or while idle.
4. The driver kills itself (fault injection) inside batch KILL_IN_TOPIC_WRITE's Kafka
   transaction: every record of the batch is in the topics, the transaction not committed.
5. SIGTERM it at GRACEFUL_STOP_POINT, with batches still queued (a query that is behind
   is never idle): it finishes its running batch, stops and exits 0, no batch interrupted.
6. After the last restart, every row of every table equals the oracle (nothing lost,
   nothing written twice), each malformed record is quarantined exactly once, and every
   output topic read with read_committed holds exactly its table's rows (the aborted
   transaction's records are not read; nothing is missing).
7. The Spark History Server (the platform's `spark-history` service, on loopback only)
   lists the kill -9'd drivers' runs, unfinished, with their jobs, and the gracefully
   stopped one as finished; the links of `make status` and the health page name the
   running driver as current and the stopped one as previous.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from decimal import Decimal

import pandas as pd
import psutil
import pytest
import requests

from include.analytics import ROW_KEYS
from include.kafka.client import read_to_end
from include.kafka.topics import provision
from include.runtime.procs import free_port
from include.runtime.spark_history import SparkHistoryServer, streaming_driver_links
from include.runtime.spark_launch import STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.lease import read_holder
from spark_jobs.output_topics import KILL_IN_TOPIC_WRITE as KILL_IN_TOPIC_WRITE_VARIABLE
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import (
    ORACLES,
    expected_rows,
    produce_dataset,
    read_table,
    seeded_events,
    table_rows,
)
from tests.integration.streaming import launch, said_wrong

pytestmark = pytest.mark.integration

ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# The data set's ~5,500 records take 7 batches of BATCH (0-6); every fault lands on data.
BATCH = 800
KILL_POINT = 2  # committed batches before the kill -9
KILL_IN_TOPIC_WRITE = 4  # the batch whose Kafka transaction the driver dies in
GRACEFUL_STOP_POINT = 5  # batches are still to come: the query is behind
APP_ARGS = ("--max-offsets-per-trigger", str(BATCH), "--trigger-seconds", "2")


@pytest.fixture(scope="module")
def crash_settings(kafka, registry, platform_env, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_SPARK_HISTORY__PORT", str(free_port()))
        with isolated_settings(tmp_path_factory, "crash") as settings:
            yield settings


@pytest.fixture(scope="module")
def history(crash_settings):
    """The platform's Spark History Server on the test's state dir."""
    server = SparkHistoryServer(crash_settings)
    server.start()
    yield server
    server.stop(timeout=30)


def committed_batches(settings: Settings) -> int:
    commits = settings.paths.pipeline_checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()]) if commits.exists() else 0


def kill_hard(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # the JVM and the Python driver, no shutdown hooks
    proc.wait(30)


def run_until(settings: Settings, log, batches: int):
    """Start the app; return it once the query has committed `batches` batches."""
    proc = launch(settings, log, *APP_ARGS)
    try:
        poll(
            lambda: (proc.poll(), committed_batches(settings)),
            lambda state: state[0] is not None or state[1] >= batches,
            f"{batches} committed batches",
            timeout=240,
            interval=0.5,
        )
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
    except BaseException:
        kill_hard(proc)
        raise
    return proc


def stop_under_load(settings: Settings, log) -> None:
    """SIGTERM while batches are queued: exit 0 at a batch boundary, nothing interrupted."""
    proc = run_until(settings, log, GRACEFUL_STOP_POINT)
    try:
        driver = read_holder(settings.paths.pipeline_checkpoint)
        assert driver is not None, f"no driver holds the checkpoint; see {log}"
        os.kill(driver.pid, signal.SIGTERM)  # the Python driver, as the supervisor does
        code = proc.wait(timeout=180)
        assert code == 0, f"a graceful stop must exit 0, not {code}; {log} says:\n{said_wrong(log)}"
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    said = log.read_text()
    assert "interrupting it" not in said, f"a batch was interrupted; see {log}"
    assert "stopped query pipeline after batch" in said, f"not stopped; see {log}"


def killed_in_topic_write(settings: Settings, log) -> None:
    """Run until the driver kills itself inside batch KILL_IN_TOPIC_WRITE's transaction."""
    env = {KILL_IN_TOPIC_WRITE_VARIABLE: str(KILL_IN_TOPIC_WRITE)}
    proc = launch_app(settings, STREAMING_APP, log, *APP_ARGS, env=env)
    try:
        assert proc.wait(timeout=300) != 0, f"the fault point did not fire; see {log}"
    finally:
        if proc.poll() is None:
            kill_hard(proc)
    # The fault point marks the moment (its log line dies with the JVM that forwards it).
    marker = settings.state / f".{KILL_IN_TOPIC_WRITE_VARIABLE.lower()}-{KILL_IN_TOPIC_WRITE}"
    assert marker.exists(), f"the driver died elsewhere; see {log}"
    assert committed_batches(settings) == KILL_IN_TOPIC_WRITE, "the batch must not be committed"


def comparable(value) -> object:
    """A table cell or a JSON value in one form: instants as UTC timestamps, numbers as
    Decimal (JSON's are parsed as such), lists as tuples."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return tuple(comparable(v) for v in list(value))
    if isinstance(value, str) and ISO_INSTANT.match(value):
        return pd.Timestamp(value).tz_convert("UTC")
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value)).normalize()
    return value


def record_key(output: str, row: dict) -> str:
    """The record key the contract gives a row: its key columns joined with |, instants as
    ISO-8601 with milliseconds in UTC (docs/DESIGN.md, "Outputs")."""
    parts = []
    for column in ROW_KEYS[output]:
        value = row[column]
        if isinstance(value, pd.Timestamp):
            value = value.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        parts.append("" if value is None else str(value))
    return "|".join(parts)


def topic_rows(settings: Settings, output: str) -> Counter:
    """An output topic's records, read_committed, as a multiset of (key, row) in comparable
    form; a dead letter's row is its message's source and reason."""
    topic = (
        settings.kafka.dead_letter_topic
        if output == "dead_letters"
        else settings.output_topic(output)
    )
    found: Counter = Counter()
    for record in read_to_end(settings.bootstrap_servers, topic):
        value = json.loads(record.value, parse_float=Decimal)
        if output == "dead_letters":
            value = {c: value[c] for c in ("source_topic", "source_partition", "source_offset")}
            value["reason"] = json.loads(record.value)["reason"]
        row = tuple(sorted((c, comparable(v)) for c, v in value.items()))
        found[(record.key.decode(), row)] += 1
    return found


def table_records(settings: Settings, output: str) -> Counter:
    """A table's rows as its topic should hold them: the contract's key and the row."""
    frame = read_table(settings.paths.table_path(output))
    columns = (
        ["source_topic", "source_partition", "source_offset", "reason"]
        if output == "dead_letters"
        else list(frame.columns)
    )
    found: Counter = Counter()
    for row in frame.to_dict("records"):
        cells = tuple(sorted((c, comparable(row[c])) for c in columns))
        found[(record_key(output, row), cells)] += 1
    return found


def wait_for_oracle_rows(analytic: str, expected: pd.DataFrame, proc, settings, log):
    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return table_rows(analytic, settings, expected.columns)

    return poll(
        fetch,
        lambda df: len(df) >= len(expected),
        f"{len(expected)} {analytic} rows after the restarts",
        timeout=300,
        interval=1,
    )


def started_apps(settings: Settings) -> list[str]:
    """The drivers' application ids from their event logs' folders, oldest first (a local
    driver's id is ``local-<start in ms>``)."""
    folders = settings.paths.spark_events_dir.glob("eventlog_v2_local-*")
    return sorted((f.name.removeprefix("eventlog_v2_") for f in folders), key=lambda a: int(a[6:]))


def history_of(server: SparkHistoryServer, app_id: str) -> tuple[dict, list]:
    """An application as the History Server's REST API lists it, and its jobs."""
    apps = requests.get(f"{server.url}/api/v1/applications", timeout=10).json()
    (app,) = [a for a in apps if a["id"] == app_id] or [{}]
    jobs = requests.get(f"{server.url}/api/v1/applications/{app_id}/jobs", timeout=30)
    return app, jobs.json() if jobs.ok else []


def check_history(settings: Settings, server: SparkHistoryServer) -> None:
    """Step 7: the killed drivers' runs survive them in the History Server."""
    listening = {
        c.laddr.ip
        for c in psutil.Process(server.pid()).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening
    apps = started_apps(settings)
    assert len(apps) == 4, f"four drivers ran, event logs of {apps}"
    killed, died_in_write, stopped, running = apps
    for app_id, completed in ((killed, False), (died_in_write, False), (stopped, True)):
        app, jobs = poll(
            lambda a=app_id: history_of(server, a),
            lambda found: bool(found[0]) and bool(found[1]),
            f"{app_id} and its jobs in the History Server",
            timeout=60,
        )
        assert app["name"] == "ecommerce-streaming", app
        assert [attempt["completed"] for attempt in app["attempts"]] == [completed], app
        assert all(job["status"] in {"SUCCEEDED", "RUNNING", "FAILED"} for job in jobs), jobs
    links = streaming_driver_links(settings)
    assert [(link.label, link.record.app_id) for link in links] == [
        ("current", running),
        ("previous", stopped),
    ]
    assert links[1].url == f"{server.url}/history/{stopped}/"
    assert requests.get(links[1].url, timeout=30).ok


def test_hard_kills_and_a_stop_under_load_lose_and_duplicate_nothing(crash_settings, history):
    settings = crash_settings
    provision(settings)
    sent, flush = seeded_events()
    malformed_at = produce_dataset(settings, sent, flush)
    records = len(sent) + len(flush) + len(malformed_at)
    assert records > (GRACEFUL_STOP_POINT + 1) * BATCH, "the graceful stop must find a backlog"
    log = settings.paths.log_dir / "streaming-crash.log"

    kill_hard(run_until(settings, log, KILL_POINT))
    killed_in_topic_write(settings, settings.paths.log_dir / "streaming-topic-write.log")
    stop_under_load(settings, settings.paths.log_dir / "streaming-graceful.log")

    proc = launch(settings, log, *APP_ARGS)
    try:
        for analytic in ORACLES:
            expected = expected_rows(analytic, sent, flush, settings)
            got = wait_for_oracle_rows(analytic, expected, proc, settings, log)
            assert len(got) == len(expected), f"{analytic}: rows written twice"
            pd.testing.assert_frame_equal(got, expected, check_dtype=False)
        quarantine = poll(
            lambda: read_table(settings.paths.table_path("dead_letters")),
            lambda df: len(df) >= len(malformed_at),
            "quarantined records",
            timeout=120,
        )
        assert sorted(
            zip(quarantine.source_partition, quarantine.source_offset, strict=True)
        ) == sorted(malformed_at)
        for output in [*ORACLES, "dead_letters"]:
            wanted = table_records(settings, output)
            got = poll(
                lambda o=output: topic_rows(settings, o),
                lambda found, w=wanted: sum(found.values()) >= sum(w.values()),
                f"{output} topic as long as its table",
                timeout=60,
            )
            assert got == wanted, f"{output}: topic and table differ"
        check_history(settings, history)
    finally:
        kill_hard(proc)
