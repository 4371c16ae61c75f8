"""The real streaming application on the real broker: every row of every analytic equals the
oracle, every malformed event reaches the dead-letter topic with its reason.

1. Provision topics; produce the seeded data set of tests/integration/dataset.py.
2. spark-submit the streaming application from the earliest offset, the one query (every output).
3. Poll each Delta table until it holds as many rows as the oracle; compare every row.
4. Read the output topics (at least once: distinct keys) and the dead-letter topic.
5. Send events older than the watermark: every output counts them dropped; no table changes.
6. A backfill of the first ten minutes differs from the streaming tables by exactly the
   rows the late events change (the stream dropped them, the backfill counts them).
7. A second driver on the same checkpoints is refused, naming the running one.
8. Touch the stop file: the application stops at a batch boundary and exits 0.
9. A driver Airflow lost track of (a zombie) is stopped by the supervisor.
10. The query started on a checkpoint it no longer fits is refused with the command to fix it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta

import pandas as pd
import psutil
import pytest
import requests

from include.analytics import TIME_COLUMNS
from include.kafka.client import consumer, read_to_end
from include.kafka.topics import provision
from include.quality.run import run_quality
from include.quality.source import KafkaInput
from include.registry import AvroDecoder
from include.runtime.procs import alive
from include.runtime.spark_launch import BACKFILL_APP, STREAMING_APP, launch_app
from include.settings import Settings
from include.streaming.checkpoints import relocate_command
from include.streaming.lease import live_holder
from include.streaming.supervisor import supervise_once
from spark_jobs.backfill_app import EXAMPLE_ROWS
from spark_jobs.streaming_app import EXIT_CHECKPOINT_IN_USE
from tests.conftest import poll
from tests.integration.dataset import (
    ORACLES,
    START,
    expected_of,
    expected_rows,
    late_events,
    normalise,
    produce_dataset,
    read_table,
    seeded_events,
    send,
    table_rows,
)
from tests.integration.streaming import (
    dropped_by_watermark,
    have_read,
    launch,
    progress_records,
)
from tests.ui.backfill_page import analytic_cells, as_rows, differing_rows, reconciliation_page

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def produced(kafka, registry, settings):
    provision(settings)
    sent, flush = seeded_events()
    return sent, flush, produce_dataset(settings, sent, flush)


@pytest.fixture(scope="module")
def streaming_run(produced, settings, tmp_path_factory):
    stop_file = tmp_path_factory.mktemp("ctl") / "stop"
    log = settings.paths.log_dir / "streaming-integration.log"
    proc = launch(settings, log, "--stop-file", str(stop_file))  # every query
    yield proc, stop_file, log
    if proc.poll() is None:
        proc.kill()
        proc.wait(30)


@pytest.mark.parametrize("analytic", list(ORACLES))
def test_every_row_of_every_analytic_equals_the_oracle(analytic, produced, streaming_run, settings):
    sent, flush, _ = produced
    proc, _, log = streaming_run
    expected = expected_rows(analytic, sent, flush, settings)
    assert len(expected) > 10  # the data set really spans many windows

    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return table_rows(analytic, settings, expected.columns)

    got = poll(
        fetch,
        lambda df: len(df) >= len(expected),
        f"{len(expected)} {analytic} rows",
        timeout=300,
        interval=1,
    )
    assert len(got) == len(expected), "the sink has rows the oracle does not (duplicates?)"
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    # The output topic carries the same rows, at least once, with deterministic keys.  The
    # batch writes Kafka after the table, so the topic may trail the table for a moment.
    keys = poll(
        lambda: {
            r.key for r in read_to_end(settings.bootstrap_servers, settings.output_topic(analytic))
        },
        lambda found: len(found) >= len(expected),
        f"{analytic} output topic",
        timeout=60,
    )
    assert len(keys) == len(expected)


def test_every_malformed_event_is_dead_lettered_with_its_reason(produced, streaming_run, settings):
    proc, _, log = streaming_run
    wanted = produced[2]

    def fetch():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        reader = consumer(
            settings.bootstrap_servers, settings.kafka.dead_letter_topic, consumer_timeout_ms=3000
        )
        records = [json.loads(r.value) for r in reader]
        reader.close()
        return records

    records = poll(
        fetch, lambda recs: len(recs) >= len(wanted), "dead letters", timeout=240, interval=1
    )
    got = {(r["source_partition"], r["source_offset"]): r for r in records}
    assert len(records) == len(wanted), "each malformed record exactly once, nothing else"
    assert set(got) == set(wanted)
    for where, (raw, reason) in wanted.items():
        record = got[where]
        assert record["reason"] == reason, where
        assert record["source_topic"] == settings.kafka.input_topic
        assert record["raw_value_bytes"] == len(raw)
        shown = base64.b64decode(record["raw_value_base64"])
        # The message keeps at most max_event_bytes of the raw value; the table keeps all.
        assert shown == (raw[: len(shown)] if record["raw_value_truncated"] else raw)
    quarantine = read_table(settings.paths.table_path("dead_letters"))
    table = {
        (r.source_partition, r.source_offset): (bytes(r.raw_value), r.reason)
        for r in quarantine.itertuples()
    }
    assert table == wanted


def test_the_quality_checks_pass_on_the_tables_spark_wrote(produced, streaming_run, settings):
    """Spark's tables meet the schema contract, and revenue reconciles with the input topic
    read back through Kafka: the checks agree with the oracle-verified tables above."""
    report = run_quality(
        settings,
        KafkaInput(
            settings.bootstrap_servers, settings.kafka.input_topic, avro=AvroDecoder(settings)
        ),
        full=True,
    )
    checked = {t.table: t for t in report.tables}
    assert set(checked) == set(ORACLES) | {"dead_letters"}
    failed = [
        f"{table}: {check.describe()}"
        for table, check in report.checks_with("fail")
        # The data set has an hour-long gap (its flush events) without purchases: the
        # tables really are behind the input's newest event time there.
        if not check.name.startswith("newest")
    ]
    assert failed == []
    revenue = {c.name: c for c in checked["revenue_by_category"].checks}
    reconciled = revenue["revenue per window and category equals the purchases in Kafka"]
    assert reconciled.status == "pass" and reconciled.observed_value == 0
    assert "equal Kafka's" in reconciled.detail
    assert checked["revenue_by_category"].rows_checked == len(
        expected_rows("revenue_by_category", *produced[:2], settings)
    )


def test_events_beyond_the_watermark_are_counted_and_change_nothing(
    produced, streaming_run, settings
):
    sent, flush, _ = produced
    proc, _, log = streaming_run
    # Every table complete means the flush events have moved every watermark an hour on.
    for analytic in ORACLES:
        expected = expected_rows(analytic, sent, flush, settings)
        poll(
            lambda a=analytic, e=expected: table_rows(a, settings, e.columns),
            lambda df, e=expected: len(df) >= len(e),
            f"{analytic} complete before the late events",
            timeout=300,
            interval=1,
        )
    before = dropped_by_watermark(progress_records(settings))
    late = late_events()
    offsets = send(settings, late)

    def batches_after():
        assert proc.poll() is None, f"streaming app exited {proc.returncode}; see {log}"
        return [
            r
            for r in progress_records(settings)
            if have_read(r, offsets, settings.kafka.input_topic)
        ]

    poll(
        batches_after,
        lambda records: set(ORACLES) <= {r["name"] for r in records},
        "every query to read the late events",
        timeout=120,
        interval=2,
    )
    dropped = dropped_by_watermark(progress_records(settings)) - before
    used_by_click = sum(e["event_type"] in ("page_view", "purchase") for e in late)
    wanted = {a: used_by_click if a == "click_to_purchase" else len(late) for a in ORACLES}
    assert {a: dropped[a] for a in ORACLES} == wanted
    for analytic in ORACLES:
        expected = expected_rows(analytic, sent, flush, settings)
        got = table_rows(analytic, settings, expected.columns)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)


def test_a_backfill_reconciles_with_the_stream_and_blames_only_the_late_events(
    produced, streaming_run, settings
):
    """The backfill of the data set's first ten minutes counts the late events the stream
    dropped: its differences from the streaming tables are exactly the rows those events
    change, computed by the oracle with and without them."""
    sent, flush, _ = produced
    start = START.replace(second=0)
    interval = (start, start + timedelta(minutes=10))
    log = settings.paths.log_dir / "backfill-reconcile.log"
    # The data set's event times are an hour old but its Kafka record times are when this
    # module produced it, minutes or more after START was fixed: read that far.
    margin = int((datetime.now(UTC) - START).total_seconds()) + 3600
    proc = launch_app(
        settings,
        BACKFILL_APP,
        log,
        "--start",
        interval[0].isoformat(),
        "--end",
        interval[1].isoformat(),
        env={"ECOM_BACKFILL__MARGIN_SECONDS": str(margin)},
    )
    assert proc.wait(timeout=400) == 0, f"backfill failed; see {log}"
    (report_file,) = (settings.paths.metrics_dir / "backfill").glob("*.json")
    report = json.loads(report_file.read_text())["analytics"]
    html = reconciliation_page(report_file.stem)
    shown = analytic_cells(html)
    assert report["revenue_by_category"]["rows"] > 0, f"the backfill read nothing; see {log}"
    for analytic, (_, order) in ORACLES.items():
        key = TIME_COLUMNS[analytic]

        def inside(frame, key=key, order=order):
            times = pd.to_datetime(frame[key], utc=True)
            return normalise(frame[(times >= interval[0]) & (times < interval[1])], order)

        streamed = as_rows(inside(expected_of(analytic, sent + flush, settings)))
        everything = as_rows(inside(expected_of(analytic, sent + flush + late_events(), settings)))
        got = report[analytic]
        assert got["duplicate_keys_in_stream"] == 0, analytic
        assert got["only_in_stream"] == sum((streamed - everything).values()), (analytic, got)
        assert got["only_in_backfill"] == sum((everything - streamed).values()), (analytic, got)
        # The reconciliation page shows the same, and lists the rows the late events add
        # (up to its limit of examples).
        row = shown[analytic]
        assert row["only-in-backfill"] == f"{sum((everything - streamed).values()):,}", analytic
        assert row["only-in-stream"] == f"{sum((streamed - everything).values()):,}", analytic
        listed = differing_rows(html, analytic, "only-in-backfill")
        assert len(listed) == min(sum((everything - streamed).values()), EXAMPLE_ROWS), analytic
    assert report["revenue_by_category"]["only_in_backfill"] > 0  # the late purchases show
    # Which revenue windows the late purchases change, by the oracle: the page lists those.
    with_late = expected_of("revenue_by_category", sent + flush + late_events(), settings)
    without = expected_of("revenue_by_category", sent + flush, settings)
    merged = with_late.merge(without, how="left", indicator=True)
    changed = merged[merged["_merge"] == "left_only"]
    changed_keys = set(
        zip(pd.to_datetime(changed["window_start"], utc=True), changed["category"], strict=True)
    )
    listed = differing_rows(html, "revenue_by_category", "only-in-backfill")
    shown_keys = {(pd.to_datetime(r["window_start"], utc=True), r["category"]) for r in listed}
    assert listed and shown_keys <= changed_keys, (listed, changed_keys)
    revenue = shown["revenue_by_category"]
    assert revenue["verdict"] == "differs" and int(revenue["late"]) > 0, revenue
    assert "late data explains it" in revenue["explanation"], revenue


def test_a_second_driver_on_the_same_checkpoints_is_refused(streaming_run, settings):
    proc, _, log = streaming_run
    second_log = settings.paths.log_dir / "streaming-second-driver.log"
    second = launch(settings, second_log)
    assert second.wait(timeout=120) == EXIT_CHECKPOINT_IN_USE
    message = re.search(r"in use by driver pid (\d+)", second_log.read_text())
    assert message, f"no refusal naming the driver in {second_log}"
    running_driver = psutil.Process(int(message.group(1)))
    assert running_driver.parent().pid == proc.pid  # the first app's Python driver
    assert proc.poll() is None, f"the first app must keep running; see {log}"


def test_the_spark_ui_answers_on_loopback_only_and_cannot_kill(streaming_run, settings):
    """The UI has no login, so it listens on loopback and its kill links are off."""
    _, _, log = streaming_run
    text = log.read_text()
    # Spark tries 4040, 4041, ... until a port is free: the last attempt is the UI's.
    hosts = re.findall(r"Start Jetty ([\d.]+):\d+ for SparkUI", text)
    started = re.search(r"Successfully started service 'SparkUI' on port (\d+)", text)
    assert hosts and started, f"no Spark UI start in {log}"
    assert set(hosts) == {settings.bind_host} == {"127.0.0.1"}
    host, port = hosts[-1], int(started.group(1))
    api = f"http://{host}:{port}/api/v1/applications"
    (app,) = requests.get(api, timeout=30).json()
    environment = requests.get(f"{api}/{app['id']}/environment", timeout=30).json()
    assert dict(environment["sparkProperties"])["spark.ui.killEnabled"] == "false"


def test_stop_file_stops_the_application_at_a_batch_boundary(streaming_run, settings):
    proc, stop_file, log = streaming_run
    stop_file.touch()
    assert proc.wait(timeout=120) == 0, f"streaming app did not exit 0; see {log}"
    # At a batch boundary: every planned batch of the one query was committed.
    checkpoint = settings.paths.pipeline_checkpoint
    planned, committed = (
        max(int(f.name) for f in (checkpoint / log_dir).iterdir() if f.name.isdigit())
        for log_dir in ("offsets", "commits")
    )
    assert planned == committed, f"batch {planned} planned, {committed} committed"


def test_the_supervisor_stops_a_driver_airflow_lost_track_of(settings):
    """A driver runs, but Airflow has no active streaming run (it marked the task failed):
    the supervisor stops the zombie at a batch boundary and asks for a new run."""
    log = settings.paths.log_dir / "streaming-zombie.log"
    proc = launch(settings, log)
    try:
        holder = poll(
            lambda: live_holder(settings.paths.pipeline_checkpoint),
            lambda found: found is not None and found.pid != os.getpid(),
            "the driver's lease",
            timeout=120,
        )
        # Airflow's answer: the streaming DAG ran before, nothing of it is active now.
        restart = supervise_once(
            settings,
            ["revenue_by_category"],
            settings.bootstrap_servers,
            lambda states: 1 if states is None else 0,
            wait_for_run_end=5,
        )
        assert restart, "after stopping the zombie a new run is due"
        assert proc.wait(timeout=60) == 0, f"the zombie should stop gracefully; see {log}"
        assert not alive(holder.pid)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_checkpoint_that_no_longer_fits_is_refused_with_the_fix(settings, tmp_path_factory):
    """The pipeline started with revenue_by_category alone on the checkpoint of all outputs,
    as if its plan had changed: Spark refuses, the app says how to start afresh, nothing is
    deleted."""
    state = tmp_path_factory.mktemp("changed_query_state")
    env = {"ECOM_STATE_DIR": str(state)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ECOM_STATE_DIR", str(state))
        changed = Settings()
    checkpoint = changed.paths.pipeline_checkpoint
    shutil.copytree(
        settings.paths.pipeline_checkpoint,
        checkpoint,
        ignore=shutil.ignore_patterns("_driver.lease"),
    )
    send(settings, late_events()[:1])  # new input: a batch must run and load the state
    log = changed.paths.log_dir / "streaming-changed-query.log"
    proc = launch_app(changed, STREAMING_APP, log, "--outputs", "revenue_by_category", env=env)
    try:
        assert proc.wait(timeout=180) == 1, f"expected a refusal; see {log}"
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "cannot continue from its checkpoint" in text, log
    assert relocate_command() in text
    assert (checkpoint / "metadata").exists() and (checkpoint / "commits").is_dir()
