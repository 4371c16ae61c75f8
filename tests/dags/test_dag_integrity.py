"""Every DAG parses without import errors or I/O, and follows the house policies.

Modelled on the Astro project template's DAG-integrity test.  Parsing runs in a child
process in which opening a network connection or starting a subprocess raises, so a DAG
that talks to Kafka, Spark or a database at parse time shows up as an import error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_DAGS = {
    "provision_topics",
    "producer",
    "streaming",
    "data_quality",
    "supervisor",
    "streaming_restart",
    "backfill",
    "dead_letter_alerts",
    "table_maintenance",
}

PARSE_SCRIPT = r"""
import json, socket, subprocess, sys
import airflow
from airflow.dag_processing.dagbag import DagBag
def refuse(*a, **k):
    raise RuntimeError("I/O at DAG parse time: %r" % (a[:2],))
socket.socket.connect = refuse
socket.create_connection = refuse
subprocess.Popen.__init__ = refuse
bag = DagBag(dag_folder=sys.argv[1])
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "doc_md": bool(dag.doc_md and dag.doc_md.strip()),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "catchup": dag.catchup,
        "tags": sorted(dag.tags or []),
        "timetable": type(dag.timetable).__name__,
        "delta": str(getattr(dag.timetable, "delta", "")),
        "schedule_assets": sorted(
            a.uri for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects", [])
        ),
        "params": sorted(dag.params.keys()),
        "watchers": sorted(
            (w.name, type(w.trigger).__name__, w.trigger.serialize()[1].get("topics"))
            for a in getattr(getattr(dag.timetable, "asset_condition", None), "objects", [])
            for w in getattr(a, "watchers", [])
        ),
        "paused_upon_creation": dag.is_paused_upon_creation,
        "cron": getattr(dag.timetable, "_expression", None),
        "timetable_data": (
            dag.timetable.serialize() if hasattr(dag.timetable, "_expression") else None
        ),
        "tasks": [
            {"id": t.task_id, "owner": t.owner, "retries": t.retries, "pool": t.pool,
             "retry_delay": t.retry_delay.total_seconds(),
             "outlets": sorted(getattr(o, "uri", None) or "alias:" + o.name for o in t.outlets),
             "links": sorted(type(l).__name__ for l in t.operator_extra_links),
             "on_failure": sorted(type(c).__name__ for c in t.on_failure_callback or [])}
            for t in dag.tasks
        ],
    }
print("@@" + json.dumps(out))
"""


def parse_folder(folder: Path, home: Path) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/parse-only.db",
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:1"}}
        ),
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("@@")), None)
    assert line, f"DAG parsing crashed:\n{result.stderr[-3000:]}"
    return json.loads(line[2:])


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    return parse_folder(ROOT / "dags", tmp_path_factory.mktemp("airflow_home"))


def test_the_guard_catches_a_dag_that_connects_at_parse_time(tmp_path):
    """The integrity check itself must be able to fail."""
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "bad.py").write_text(
        "import socket\n"
        "from airflow.sdk import dag\n"
        "socket.create_connection(('127.0.0.1', 9092))\n"
        "@dag(dag_id='bad', schedule=None)\n"
        "def bad():\n    pass\n"
        "bad()\n"
    )
    result = parse_folder(folder, tmp_path / "home")
    assert any("I/O at DAG parse time" in err for err in result["errors"].values())


def test_no_import_errors(parsed):
    assert parsed["errors"] == {}, "\n".join(f"{k}: {v}" for k, v in parsed["errors"].items())


def test_expected_dags_are_present(parsed):
    assert EXPECTED_DAGS <= parsed["dags"].keys()


def test_every_dag_has_docs_and_tags(parsed):
    for dag_id, dag in parsed["dags"].items():
        assert dag["doc_md"], f"{dag_id} has no doc_md"
        assert dag["tags"], f"{dag_id} has no tags"


def test_every_task_has_an_owner_and_retries(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task in dag["tasks"]:
            assert task["owner"] not in (None, "", "airflow"), f"{dag_id}.{task['id']} owner"
            if (dag_id, task["id"]) == ("streaming", "run_streaming_app"):
                # The supervisor DAG restarts it; Airflow's retries would race it.
                assert task["retries"] == 0, "streaming must leave restarts to the supervisor"
            else:
                assert task["retries"] >= 1, f"{dag_id}.{task['id']} has no retries"


def test_every_dag_takes_the_shared_defaults(parsed):
    """Owner and start date come from include.dag_defaults, never from a DAG file of its own."""
    from include.dag_defaults import OWNER, START_DATE

    for dag_id, dag in parsed["dags"].items():
        # The scheduled restart has none: with one, Airflow would run its latest past slot
        # as soon as the DAG appears (test_the_scheduled_restart_waits_for_its_next_slot).
        expected = None if dag_id == "streaming_restart" else START_DATE.isoformat()
        assert dag["start_date"] == expected, f"{dag_id} start_date"
        for task in dag["tasks"]:
            assert task["owner"] == OWNER, f"{dag_id}.{task['id']} owner"


@pytest.mark.parametrize(
    "after_slot",
    [timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=2), timedelta(hours=20)],
)
def test_the_scheduled_restart_waits_for_its_next_slot(parsed, after_slot, monkeypatch):
    """Its first run is the next cron slot after the DAG appears, not the latest past one
    (which would restart a driver the platform has just started), however soon after a slot
    the platform starts.  A plain cron schedule ran the past slot when the platform started
    within 2.4 h after it."""
    import airflow.timetables.trigger as trigger
    from airflow.timetables.base import TimeRestriction

    dag = parsed["dags"]["streaming_restart"]
    assert dag["timetable"] == "CronTriggerTimetable"
    timetable = trigger.CronTriggerTimetable.deserialize(dag["timetable_data"])
    earliest = pendulum.parse(dag["start_date"]) if dag["start_date"] else None
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=dag["catchup"])

    def first_run_after_appearing_at(now):
        monkeypatch.setattr(trigger, "utcnow", lambda: now)
        return timetable.next_dagrun_info(
            last_automated_data_interval=None, restriction=restriction
        ).run_after

    slot = first_run_after_appearing_at(pendulum.now("UTC"))  # a real slot of the schedule
    now = slot + after_slot
    assert now < first_run_after_appearing_at(now) <= now.add(days=1)


def test_the_streaming_driver_runs_in_the_one_slot_pool(parsed):
    from include.settings.base import STREAMING_POOL

    (task,) = parsed["dags"]["streaming"]["tasks"]
    assert task["pool"] == STREAMING_POOL


def test_the_backfill_gets_hour_long_data_intervals(parsed):
    # A plain cron schedule in Airflow 3 gives start == end: nothing to backfill.
    assert parsed["dags"]["backfill"]["timetable"] == "CronDataIntervalTimetable"
    assert parsed["dags"]["backfill"]["cron"] == "0 * * * *"


def test_backfills_run_because_the_backfill_dag_is_never_paused(parsed):
    # Airflow starts no run of a paused DAG, backfills included: created paused, a backfill
    # made as the README says stayed queued.  [backfill] on_schedule governs its own runs.
    backfill = parsed["dags"]["backfill"]
    assert backfill["paused_upon_creation"] is False
    tasks = {t["id"]: t for t in backfill["tasks"]}
    assert tasks["recompute_interval"]["links"] == ["ReconciliationLink"]


def test_the_supervisor_looks_every_interval_seconds(parsed):
    from include.settings import get_settings

    supervisor = parsed["dags"]["supervisor"]
    assert supervisor["timetable"] == "DeltaTriggerTimetable"
    interval = timedelta(seconds=get_settings().supervisor.interval_seconds)
    assert supervisor["delta"] == str(interval)
    # A failed round is retried at the next look, not after Airflow's 5 minutes (one run
    # at a time: the supervisor would be blind that long).
    for task in supervisor["tasks"]:
        assert task["retry_delay"] == interval.total_seconds(), task["id"]


def test_table_updates_trigger_the_quality_checks(parsed):
    from include.analytics import ANALYTIC_NAMES, QUERIES
    from include.assets import SINK_UPDATES, backfill_asset, sink_asset

    quality = parsed["dags"]["data_quality"]
    assert quality["timetable"] == "AssetOrTimeSchedule"
    announced = {sink_asset(t).uri for t in QUERIES}
    backfilled = {backfill_asset(a).uri for a in ANALYTIC_NAMES}
    assert set(quality["schedule_assets"]) == announced | backfilled
    assert quality["params"] == ["full", "tables"]
    (check,) = quality["tasks"]
    assert check["links"] == ["QualityReportLink"]
    # The supervisor announces the sink tables, the backfill its own tables.
    supervisor = {t["id"]: t for t in parsed["dags"]["supervisor"]["tasks"]}
    assert supervisor["announce_table_updates"]["outlets"] == [f"alias:{SINK_UPDATES.name}"]
    backfill = {t["id"]: t for t in parsed["dags"]["backfill"]["tasks"]}
    assert set(backfill["recompute_interval"]["outlets"]) == backfilled


def test_every_task_alerts_when_it_fails_for_good(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task in dag["tasks"]:
            assert task["on_failure"] == ["TaskFailureAlert"], f"{dag_id}.{task['id']}"


def test_dead_letters_are_watched_from_the_triggerer(parsed):
    from include.settings import get_settings

    alerts = parsed["dags"]["dead_letter_alerts"]
    topic = get_settings().kafka.dead_letter_topic
    assert alerts["watchers"] == [["dead_letter_watch", "AwaitMessageTrigger", [topic]]]
    assert alerts["schedule_assets"] == [f"kafka://{get_settings().bootstrap_servers}/{topic}"]


def test_a_dead_letter_alert_outlives_a_broker_restart(parsed):
    """Its run may be the only one for a burst of dead letters: a run that failed on a broker
    or scheduler restart (tens of seconds) is tried again within a minute, well inside the
    interval, not after Airflow's default 5 minutes (the e2e's alert came too late)."""
    from include.settings import get_settings

    (task,) = parsed["dags"]["dead_letter_alerts"]["tasks"]
    tries_for = task["retries"] * task["retry_delay"]
    assert task["retry_delay"] <= 15 and tries_for >= 30, task
    assert tries_for < get_settings().alerts.dead_letter_interval_seconds, task


def test_maintenance_runs_on_its_cron_and_cares_for_tables_files_and_airflow(parsed):
    maintenance = parsed["dags"]["table_maintenance"]
    assert maintenance["timetable"] == "CronTriggerTimetable"
    assert {t["id"] for t in maintenance["tasks"]} == {
        "care_for_tables",
        "care_for_files",
        "prune_spark_event_logs",
        "clean_airflow_db",
    }
