"""The alerts' pure parts: sentences, repeat windows, dead-letter counts, connections."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from include.alerts.gate import Gate, seconds_until_due
from include.alerts.messages import dead_letters, first_line, task_failed
from include.alerts.notify import alert_connections, channels
from include.settings import Settings
from include.settings.sections import AlertSettings


def test_an_alert_may_repeat_only_after_its_interval() -> None:
    sent = {"k": {"at": 1000.0}}
    assert seconds_until_due(sent, "k", 300, 1100) == 200
    assert seconds_until_due(sent, "k", 300, 1300) == 0
    assert seconds_until_due(sent, "other", 300, 1100) == 0
    assert seconds_until_due({"k": {"at": None}}, "k", 300, 1100) == 0  # counted, never sent


def test_the_sending_record_forgets_what_no_longer_gates_anything(tmp_path) -> None:
    # A month of nightly restarts: a key per driver pid, one alert each day.
    gate = Gate(tmp_path / "gate.json")
    day = 86400.0
    for n in range(30):
        gate.sent(f"stalled|{1000 + n}|revenue_by_category", now=n * day)
    kept = gate.record()
    # The last seven days' keys (and today's) remain; older ones gate nothing any more.
    assert sorted(kept) == [f"stalled|{1000 + n}|revenue_by_category" for n in range(22, 30)]


def test_a_quality_failure_reads_as_one_sentence_with_its_first_failed_check() -> None:
    ti = SimpleNamespace(
        task_id="check_sink_tables",
        dag_id="data_quality",
        run_id="r1",
        try_number=1,
        log_url="http://a/dags/data_quality/runs/r1/tasks/check_sink_tables",
    )
    error = ValueError("2 check(s) failed:\n  - dead_letters: keys not null\n  - x: y")
    alert = task_failed({"ti": ti, "exception": error}, held_back=3)
    assert alert.text == (
        "Task check_sink_tables of DAG data_quality failed (run r1), 3 more failures since "
        "the last alert: 2 check(s) failed: dead_letters: keys not null."
    )
    assert alert.link == ti.log_url
    assert first_line("x" * 500).endswith("…") and len(first_line("x" * 500)) == 300
    assert first_line(None) == ""


def test_dead_letter_sentence() -> None:
    alert = dead_letters(1234, "dlq", 0.0, 300.0, "http://h:8080/")
    assert alert.text == (
        "1,234 dead letters in dlq since 1970-01-01 00:00:00 UTC (the next alert comes no "
        "sooner than 1970-01-01 00:05:00 UTC); each has its reason in the dead_letters table."
    )
    assert alert.link == "http://h:8080/ecom/health"


def test_alerts_are_off_until_a_target_is_set() -> None:
    settings = Settings()
    assert channels(settings.alerts, dead_letters(1, "t", 0, None, "http://h")) == {}
    on = AlertSettings(webhook_url="http://hook", smtp_host="mail", email_to="a@b, c@d")
    assert sorted(channels(on, dead_letters(1, "t", 0, None, "http://h"))) == ["e-mail", "webhook"]
    assert on.recipients == ["a@b", "c@d"]


def test_email_without_recipients_is_refused_with_what_to_fix() -> None:
    with pytest.raises(ValidationError, match="email_to is empty"):
        AlertSettings(smtp_host="mail", email_to="")


def test_connections_carry_the_brokers_security_and_the_smtp_password(monkeypatch) -> None:
    monkeypatch.setenv("ECOM_ALERTS__SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("ECOM_ALERTS__EMAIL_TO", "oncall@example.com")
    monkeypatch.setenv("ECOM_ALERTS__SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("ECOM_ALERTS__SMTP_SECURITY", "ssl")
    kafka_default = {"conn_type": "kafka", "extra": {"bootstrap.servers": "b:9", "x": "y"}}
    env = alert_connections(Settings(), json.dumps(kafka_default))
    watch = json.loads(env["AIRFLOW_CONN_ECOM_DEAD_LETTER_WATCH"])
    assert watch["extra"] == {
        "bootstrap.servers": "b:9",
        "x": "y",
        "group.id": "ecom-dead-letter-alerts",
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
    }
    smtp = json.loads(env["AIRFLOW_CONN_ECOM_ALERTS_SMTP"])
    assert (smtp["host"], smtp["port"], smtp["password"]) == ("mail.example.com", 587, "s3cret")
    assert (smtp["extra"]["disable_ssl"], smtp["extra"]["disable_tls"]) == (False, True)
    monkeypatch.delenv("ECOM_ALERTS__SMTP_HOST")
    assert list(alert_connections(Settings(), json.dumps(kafka_default))) == [
        "AIRFLOW_CONN_ECOM_DEAD_LETTER_WATCH"
    ]


def test_a_stopped_dead_letter_run_ends_its_wait_at_once(tmp_path, monkeypatch) -> None:
    """SIGTERM (Airflow stopping the task) ends the wait for the interval and the run, and
    Airflow's own handler still runs; nothing is counted, so the next alert counts it."""
    import os
    import signal

    from include.alerts import dead_letters as letters
    from include.runtime.procs import stop_on_sigterm

    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path))
    settings = Settings()
    letters.gate(settings).sent(letters.KEY, time.time(), offsets={"0": 7})
    airflows: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, _frame: airflows.append(signum))
    try:
        stop = stop_on_sigterm()
        waited: list[float] = []

        def sleep(seconds: float) -> bool:
            waited.append(seconds)
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the task waits
            return stop.wait(seconds)

        started = time.monotonic()
        # No broker at this address: a run that went on to count would fail.
        assert letters.report(settings, "127.0.0.1:1", None, sleep, stop.is_set) == []
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stop.is_set() and airflows == [signal.SIGTERM]
    assert len(waited) == 1 and waited[0] > 60  # the interval's wait, cut short
    assert letters.gate(settings).record()[letters.KEY]["offsets"] == {"0": 7}
