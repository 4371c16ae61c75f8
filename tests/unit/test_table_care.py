"""Table care on real Delta tables (delta-rs, no Spark): many micro-batch commits stay
within a bounded number of files and log entries, and the incremental quality read sees
every appended row once across compactions."""

from __future__ import annotations

import os
import time

import pandas as pd
import pyarrow as pa
import pytest

from include.maintenance.files import airflow_db_clean_command, cap_log, prune_older
from include.maintenance.tables import LOG_DIR, care_for_table, clean_log, log_version
from include.quality.checks import table_suites
from include.quality.slices import read_slice
from include.settings import Settings
from include.settings.sections import MaintenanceSettings
from tests.conftest import parquet_files

deltalake = pytest.importorskip("deltalake")

AGGRESSIVE = MaintenanceSettings(vacuum_retention_hours=0, log_retention_hours=0)
PATIENT = MaintenanceSettings(vacuum_retention_hours=1, log_retention_hours=1)


def batch(start: int, rows: int = 5) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + rows), pa.int64())})


def append(path, start: int, rows: int = 5) -> None:
    deltalake.write_deltalake(str(path), batch(start, rows), mode="append")


def test_a_month_of_commits_stays_within_a_bounded_number_of_files(tmp_path):
    path = tmp_path / "t"
    # A month at one commit every 10 s is 259,200 commits; the bound does not depend on
    # how many: after each pass only the commits since the last are left.  Ten passes of
    # forty commits show the count does not grow from pass to pass.
    after = []
    for n in range(10):
        for i in range(40):
            append(path, (n * 40 + i) * 5)
        done = care_for_table("t", path, AGGRESSIVE)
        after.append((parquet_files(path), len(os.listdir(path / LOG_DIR))))
        assert done.files_before == 40 + (1 if n else 0) and done.files_after == 1
    assert max(after) == after[0], f"files and log entries per pass: {after}"
    assert after[-1][0] == 1 and after[-1][1] <= 5
    table = deltalake.DeltaTable(str(path)).to_pandas()
    assert sorted(table["id"]) == list(range(400 * 5))  # no row lost or doubled


def test_the_incremental_read_sees_each_row_once_across_a_compaction(tmp_path):
    path = tmp_path / "dead_letters"
    suite = table_suites(Settings())["dead_letters"]
    for i in range(6):
        append(path, i * 5)
    first = read_slice(path, suite, None)
    for i in range(6, 9):
        append(path, i * 5)
    care_for_table("dead_letters", path, PATIENT)  # compacts; deletes nothing yet
    for i in range(9, 11):
        append(path, i * 5)
    second = read_slice(path, suite, first.version)
    assert second.since == first.version  # incremental: not a fallback to every row
    assert sorted(second.rows["id"]) == list(range(30, 55))
    seen = pd.concat([first.rows, second.rows])["id"]
    assert not seen.duplicated().any() and sorted(seen) == list(range(55))
    # Once vacuum and log cleanup removed what a very old check would need, it reads all.
    care_for_table("dead_letters", path, AGGRESSIVE)
    stale = read_slice(path, suite, first.version)
    assert stale.since is None and sorted(stale.rows["id"]) == list(range(55))


def test_log_cleanup_keeps_the_newest_checkpoint_and_what_follows(tmp_path):
    path = tmp_path / "t"
    for i in range(12):
        append(path, i, rows=1)
    deltalake.DeltaTable(str(path)).create_checkpoint()  # at version 11
    append(path, 100, rows=1)
    log = path / LOG_DIR
    old = time.time() - 3 * 3600
    for entry in log.iterdir():
        os.utime(entry, (old, old))
    assert clean_log(path, retention_hours=4) == 0  # younger than the retention
    deleted = clean_log(path, retention_hours=2)
    versions = {log_version(e.name) for e in log.iterdir()} - {None}
    assert deleted == 11 and versions == {11, 12}
    assert sorted(deltalake.DeltaTable(str(path)).to_pandas()["id"]) == [*range(12), 100]
    # A checkpoint younger than the retention does not count yet: a reader that started a
    # moment before it was written may still be reading the one at version 11.
    deltalake.DeltaTable(str(path)).create_checkpoint()  # at version 12
    assert clean_log(path, retention_hours=2) == 0
    assert {log_version(e.name) for e in log.iterdir()} - {None} == {11, 12}


def test_log_versions_are_read_from_every_kind_of_entry():
    assert log_version("00000000000000000042.json") == 42
    assert log_version(".00000000000000000042.json.crc") == 42
    assert log_version("00000000000000000040.checkpoint.parquet") == 40
    assert log_version("_last_checkpoint") is None


def test_service_logs_and_old_files_stay_bounded(tmp_path):
    service_log = tmp_path / "kafka.log"
    with open(service_log, "ab") as writer:  # as the service writes it: append mode
        for _ in range(50):
            writer.write(b"x" * 1000 + b"\n")
            writer.flush()
            cap_log(service_log, 10_000)
        writer.write(b"last\n")
        writer.flush()
    assert service_log.stat().st_size <= 10_000
    assert (tmp_path / "kafka.log.1").stat().st_size <= 10_000 + 1001
    assert service_log.read_bytes().endswith(b"last\n")
    assert not service_log.read_bytes().startswith(b"\0")  # no hole where it was cut

    reports = tmp_path / "backfill"
    now = time.time()
    for day in range(40):  # a report a day, forty days
        report = reports / f"2026-01-{day:02d}" / "report.json"
        report.parent.mkdir(parents=True)
        report.write_text("{}")
        os.utime(report, (now - day * 86400 - 60, now - day * 86400 - 60))
    assert prune_older(reports, keep_days=7, now=now) == 33
    assert len(list(reports.iterdir())) == 7


def test_airflow_db_clean_deletes_rows_before_the_retention_without_archive_tables():
    from datetime import UTC, datetime

    command = airflow_db_clean_command(7, now=datetime(2026, 1, 31, tzinfo=UTC))
    assert command[1:5] == ["-m", "airflow", "db", "clean"]
    assert "--clean-before-timestamp" in command and "2026-01-24T00:00:00+00:00" in command
    assert "--skip-archive" in command and "--yes" in command


def test_a_damaged_table_does_not_stop_the_others(tmp_path):
    from include.maintenance.tables import care_for_tables

    settings = Settings(state_dir=tmp_path)
    good = settings.paths.table_path("revenue_by_category")
    for i in range(3):
        append(good, i * 5)
    damaged = settings.paths.table_path("dead_letters") / LOG_DIR
    damaged.mkdir(parents=True)
    (damaged / "00000000000000000000.json").write_text("not json\n")
    with pytest.raises(RuntimeError, match="dead_letters"):
        care_for_tables(settings)
    assert len(deltalake.DeltaTable(str(good)).file_uris()) == 1
