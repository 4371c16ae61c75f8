"""The maintenance DAG's ``airflow db clean`` against a real Airflow metadata database
(SQLite, migrated by Airflow itself): history rows past ``keep_days`` go, newer ones stay."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from include.maintenance.files import AIRFLOW_HISTORY_TABLES, clean_airflow_db
from include.settings import Settings
from include.settings.sections import MaintenanceSettings


def test_history_rows_past_keep_days_are_deleted(tmp_path, monkeypatch):
    database = tmp_path / "airflow.db"
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{database}")
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    migrate = [sys.executable, "-m", "airflow", "db", "migrate"]
    done = subprocess.run(migrate, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    from airflow.utils.db_cleanup import config_dict

    assert set(AIRFLOW_HISTORY_TABLES) <= set(config_dict), "a table Airflow does not clean"
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(database) as db:
        for days, event in ((30, "a month old"), (8, "eight days old"), (1, "yesterday")):
            stamp = (now - timedelta(days=days)).isoformat(sep=" ")
            db.execute("INSERT INTO log (dttm, event) VALUES (?, ?)", (stamp, event))

    settings = Settings(state_dir=tmp_path, maintenance=MaintenanceSettings(keep_days=7))
    clean_airflow_db(settings, database_env={})  # the SQLite database set above

    with sqlite3.connect(database) as db:
        left = [row[0] for row in db.execute("SELECT event FROM log ORDER BY dttm")]
        archives = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE name LIKE '_airflow_del%'")
        ]
    # The command records itself in the log table ("cli_cleanup_tables").
    assert left[0] == "yesterday" and not {"a month old", "eight days old"} & set(left), left
    assert archives == []  # no archive table left to grow instead
