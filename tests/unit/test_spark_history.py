"""Spark history: the History Server's command line and properties, the drivers' event log
confs, the drivers' file behind the links, and the rule that deletes old event logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark
import pytest

from include.maintenance.files import event_log_app_id, prune_event_logs, stale_event_logs
from include.runtime.procs import PlatformError, free_port
from include.runtime.spark_history import (
    SparkHistoryServer,
    event_log_conf,
    recent_drivers,
    record_driver,
    streaming_driver_links,
)
from include.settings import Settings

DAY = 86400


@pytest.fixture
def settings(monkeypatch, tmp_path) -> Settings:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ECOM_SPARK_HISTORY__PORT", "18555")
    monkeypatch.setenv("ECOM_SPARK_HISTORY__KEEP_DAYS", "2")
    monkeypatch.setenv("ECOM_SPARK_HISTORY__KEEP_ROLLED_FILES", "3")
    monkeypatch.setenv("ECOM_JAR_CACHE", str(tmp_path / "jars"))
    return Settings()


def test_the_server_runs_spark_class_with_the_platform_properties_only(settings, tmp_path):
    server = SparkHistoryServer(settings)
    spark_home = Path(pyspark.__file__).parent
    properties = tmp_path / "state" / "run" / "spark-history.properties"
    assert server.command() == [
        str(spark_home / "bin" / "spark-class"),
        "org.apache.spark.deploy.history.HistoryServer",
        "--properties-file",
        str(properties),
    ]
    server.prepare()
    assert (tmp_path / "state" / "spark-events").is_dir()
    written = dict(line.split("=", 1) for line in properties.read_text().splitlines())
    assert written == {
        "spark.history.fs.logDirectory": f"file:{tmp_path / 'state' / 'spark-events'}",
        "spark.history.ui.port": "18555",
        "spark.port.maxRetries": "0",
        "spark.history.fs.inProgressOptimization.enabled": "true",
        "spark.history.fs.update.interval": "5s",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.history.fs.cleaner.interval": "1h",
        "spark.history.fs.cleaner.maxAge": f"{2 * DAY}s",
        "spark.history.fs.eventLog.rolling.maxFilesToRetain": "3",
        "spark.ui.killEnabled": "false",
    }
    env = server.environment()
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"  # Spark's web UIs bind to it, else 0.0.0.0
    assert env["SPARK_DAEMON_MEMORY"] == "512m"
    assert env["SPARK_HOME"] == str(spark_home)
    assert "SPARK_DIST_CLASSPATH" not in env  # no jars fetched into this jar cache
    # Once fetched, the drivers' connectors: the Kafka source's metrics in its SQL pages.
    for group, jar in (("spark", "kafka-connector.jar"), ("spark-ecom", "ecom-avro.jar")):
        (tmp_path / "jars" / group).mkdir(parents=True)
        (tmp_path / "jars" / group / jar).write_bytes(b"")
    assert server.environment()["SPARK_DIST_CLASSPATH"] == (
        f"{tmp_path}/jars/spark/kafka-connector.jar:{tmp_path}/jars/spark-ecom/ecom-avro.jar"
    )
    assert server.url == "http://127.0.0.1:18555"


def test_every_driver_logs_its_events_rolled_and_compressed(settings, tmp_path, monkeypatch):
    from spark_jobs.session import session_conf

    expected = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"file:{tmp_path / 'state' / 'spark-events'}",
        "spark.eventLog.rolling.enabled": "true",
        "spark.eventLog.rolling.maxFileSize": "32m",
        "spark.eventLog.compress": "true",
        "spark.eventLog.compression.codec": "zstd",
    }
    assert event_log_conf(settings) == expected
    assert expected.items() <= session_conf(settings).items()
    # [spark.conf] still has the last word.
    monkeypatch.setenv("ECOM_SPARK__CONF", '{"spark.eventLog.enabled": "false"}')
    assert session_conf(Settings())["spark.eventLog.enabled"] == "false"


def test_a_busy_port_or_no_java_is_refused_in_words(settings, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ECOM_SPARK_HISTORY__PORT", str(port))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(
            PlatformError, match=rf"spark-history: port 127.0.0.1:{port} is already"
        ):
            SparkHistoryServer(Settings()).check_can_start()
    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    with pytest.raises(PlatformError, match=r"spark-history: Java 17\+ is needed"):
        SparkHistoryServer(Settings()).check_can_start()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_links_name_the_current_and_the_previous_streaming_driver(settings):
    assert streaming_driver_links(settings) == []
    record_driver(settings, "local-1", "ecommerce-streaming", role="streaming_app")
    record_driver(settings, "local-2", "ecommerce-streaming", role="backfill_app")
    (only,) = streaming_driver_links(settings)
    assert (only.label, only.record.app_id) == ("current", "local-1")  # this process runs
    assert only.url == "http://127.0.0.1:18555/history/local-1/"
    record_driver(settings, "local-3", "ecommerce-streaming", role="streaming_app")
    assert [(link.label, link.record.app_id) for link in streaming_driver_links(settings)] == [
        ("current", "local-3"),
        ("previous", "local-1"),
    ]
    # A driver that ended is the last one, not the current one.
    path = settings.paths.spark_drivers_file
    lines = path.read_text().splitlines()
    newest = json.loads(lines[-1]) | {"pid": dead_pid()}
    path.write_text("\n".join([*lines[:-1], json.dumps(newest), "not json"]) + "\n")
    assert [link.label for link in streaming_driver_links(settings)] == ["last", "previous"]


def test_the_drivers_file_keeps_the_last_twenty(settings):
    for n in range(25):
        record_driver(settings, f"local-{n}", "app", role="streaming_app")
    assert [r.app_id for r in recent_drivers(settings)] == [f"local-{n}" for n in range(24, 4, -1)]


@pytest.mark.parametrize(
    ("name", "app_id"),
    [
        ("eventlog_v2_local-1796692548049", "local-1796692548049"),
        ("local-1796692548049", "local-1796692548049"),
        ("local-1796692548049.zstd.inprogress", "local-1796692548049"),
        ("app-20261208011500-0003.lz4", "app-20261208011500-0003"),
    ],
)
def test_an_event_logs_application_is_read_from_its_name(name, app_id):
    assert event_log_app_id(name) == app_id


def test_old_logs_go_unless_their_driver_runs():
    now = 1_000 * DAY
    written = {
        "eventlog_v2_local-old": now - 8 * DAY,
        "eventlog_v2_local-running": now - 30 * DAY,
        "eventlog_v2_local-fresh": now - 6 * DAY,
        "local-plain.zstd.inprogress": now - 7 * DAY - 1,
        "local-edge.zstd": now - 7 * DAY + 1,
    }
    assert stale_event_logs(written, keep_days=7, now=now, running={"local-running"}) == [
        "eventlog_v2_local-old",
        "local-plain.zstd.inprogress",
    ]


def test_pruning_deletes_old_logs_and_their_checksums_but_not_a_running_drivers(settings):
    root = settings.paths.spark_events_dir
    now = time.time()

    def log_folder(app_id: str, age_days: float, in_progress: bool) -> Path:
        folder = root / f"eventlog_v2_{app_id}"
        folder.mkdir(parents=True)
        files = [folder / f"events_1_{app_id}.zstd", folder / f".events_1_{app_id}.zstd.crc"]
        if in_progress:
            files.append(folder / f"appstatus_{app_id}.inprogress")
        for file in files:
            file.write_bytes(b"x")
            os.utime(file, (now - age_days * DAY, now - age_days * DAY))
        return folder

    ended = log_folder("local-100", 3, in_progress=False)
    killed = log_folder("local-200", 3, in_progress=True)
    running = log_folder("local-300", 3, in_progress=True)
    recent = log_folder("local-400", 1, in_progress=True)
    plain = root / "local-500.zstd"
    plain.write_bytes(b"x")
    checksum = root / ".local-500.zstd.crc"
    checksum.write_bytes(b"x")
    for file in (plain, checksum):
        os.utime(file, (now - 3 * DAY, now - 3 * DAY))
    record_driver(settings, "local-300", "ecommerce-streaming", role="streaming_app")

    assert prune_event_logs(settings, now=now) == 3
    assert sorted(p.name for p in root.iterdir()) == [running.name, recent.name]
    assert not (ended.exists() or killed.exists() or plain.exists() or checksum.exists())
    assert prune_event_logs(Settings(state_dir=settings.state / "nothing-here")) == 0


def test_the_health_page_links_the_current_and_the_previous_drivers_runs(settings):
    from html.parser import HTMLParser

    from include.ui.app import PREFIX, templates
    from include.ui.views import health_view

    class Links(HTMLParser):
        found: list[tuple[str | None, str | None]] = []

        def handle_starttag(self, tag, attrs):
            attributes = dict(attrs)
            if tag == "a" and attributes.get("class") == "driver-run":
                self.found.append((attributes.get("data-label"), attributes.get("href")))

    def links_shown() -> list[tuple[str | None, str | None]]:
        page = templates.get_template("health.html").render(
            prefix=PREFIX, view=health_view(settings), active="health"
        )
        assert 'href="http://127.0.0.1:18555"' in page  # the History Server itself
        parser = Links()
        parser.found = []
        parser.feed(page)
        return parser.found

    assert links_shown() == []
    record_driver(settings, "local-7", "ecommerce-streaming", role="streaming_app")
    record_driver(settings, "local-8", "ecommerce-backfill", role="backfill_app")
    record_driver(settings, "local-9", "ecommerce-streaming", role="streaming_app")
    assert links_shown() == [
        ("current", "http://127.0.0.1:18555/history/local-9/"),
        ("previous", "http://127.0.0.1:18555/history/local-7/"),
    ]


@pytest.mark.parametrize(
    ("script", "name"),
    [
        ("/opt/ecom/spark_jobs/streaming_app.py", "ecommerce-streaming"),
        ("spark_jobs/backfill_app.py", "ecommerce-backfill"),
        ("/x/spark_jobs/warmup.py", "ecommerce-warmup"),
    ],
)
def test_the_history_tells_the_applications_apart_by_name(script, name):
    from include.runtime.spark_history import script_role
    from spark_jobs.session import app_name

    assert app_name(script_role([script, "--outputs", "x"])) == name
