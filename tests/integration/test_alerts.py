"""Every alert path against a real webhook receiver (HTTP) and a real SMTP server, called
the way Airflow calls it: a failed quality check (the DAG's own failure callback), the
supervisor restarting a frozen driver, and dead letters on a real Kafka topic (the
provider's trigger, then the alert DAG's report).  And silence when all is well."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from kafka.admin import NewTopic

from include.alerts import dead_letters
from include.alerts.callbacks import supervisor_alert
from include.alerts.notify import DEAD_LETTER_CONN_ID, alert_connections
from include.kafka.client import admin
from include.kafka.security import confluent_kafka_options
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from include.streaming.health import Observation, classify
from include.streaming.lease import Holder
from tests.receivers import SmtpReceiver, WebhookReceiver

BASE_URL = "http://airflow.example:8080"
HEALTH = f"{BASE_URL}/ecom/health"


@pytest.fixture
def receivers(monkeypatch, tmp_path, kafka):
    """Both receivers running and the alerts pointed at them, in a state dir of its own."""
    with WebhookReceiver() as hook, SmtpReceiver() as mail:
        env = {
            **mail.env(),
            "ECOM_STATE_DIR": str(tmp_path / "state"),
            "ECOM_ALERTS__WEBHOOK_URL": hook.url,
            "AIRFLOW__API__BASE_URL": BASE_URL,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        kafka_default = json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": settings.bootstrap_servers}}
        )
        # What the platform puts in Airflow's environment (include/runtime/airflow.py).
        for key, value in alert_connections(settings, kafka_default).items():
            monkeypatch.setenv(key, value)
        yield settings, hook, mail


def load_dag(dag_id: str, monkeypatch):
    """The DAG of dags/<dag_id>.py, loaded by a DagBag as the DAG processor loads it."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def test_a_failed_quality_check_alerts_by_webhook_and_email(receivers, monkeypatch):
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    _, hook, mail = receivers
    dag = load_dag("data_quality", monkeypatch)
    task = dag.get_task("check_sink_tables")
    run_id = "asset_triggered__2026-05-01T10:00:00+00:00"
    ti = RuntimeTaskInstance.model_construct(
        dag_id="data_quality", task_id=task.task_id, run_id=run_id, try_number=2, map_index=-1
    )
    error = RuntimeError(
        "1 data quality check(s) of severity 'fail' failed:\n"
        "  - revenue_by_category: no key written twice (2 duplicate keys)\n"
        "Data quality report: /state/quality/runs/x.json"
    )
    context = {"ti": ti, "task": task, "dag": dag, "exception": error, "run_id": run_id}
    for callback in task.on_failure_callback:
        callback(context)  # as the task runner calls it after the last try

    expected_link = (
        f"{BASE_URL}/dags/data_quality/runs/asset_triggered__2026-05-01T10%3A00%3A00%2B00%3A00"
        "/tasks/check_sink_tables?try_number=2"
    )
    sentence = (
        f"Task check_sink_tables of DAG data_quality failed after 2 tries (run {run_id}): "
        "1 data quality check(s) of severity 'fail' failed: revenue_by_category: no key "
        "written twice (2 duplicate keys)."
    )
    assert hook.bodies == [
        {
            "text": f"{sentence} {expected_link}",
            "summary": sentence,
            "link": expected_link,
            "kind": "task_failed",
        }
    ]
    assert mail.subjects() == [f"[ecommerce pipeline] {sentence}"]
    assert mail.messages[0]["X-Envelope-To"] == "oncall@example.com"
    assert mail.messages[0]["From"] == "pipeline@example.com"
    assert expected_link.replace("&", "&amp;") in mail.body(0)

    # The same task failing again right away is held back, then counted in the next alert.
    for callback in task.on_failure_callback:
        callback(context)
    assert len(hook.bodies) == 1 and len(mail.messages) == 1


def frozen_verdicts(settings: Settings, queries: list[str]):
    now = time.time()
    driver = Holder(pid=4242, host="h", query="q", started=now - 600, heartbeat=now - 45)
    return [
        classify(
            Observation(q, driver, planned=9, committed=9, seconds_since_commit=50, lag={"0": 120}),
            settings.supervisor,
            now,
        )
        for q in queries
    ]


def test_the_supervisor_alerts_when_it_restarts_a_frozen_driver(receivers):
    settings, hook, mail = receivers
    verdicts = frozen_verdicts(settings, ["revenue_by_category", "conversion_funnel"])
    done = "stopped driver pid 4242; a new streaming run is starting"
    assert supervisor_alert(settings, verdicts, done) == ["webhook", "e-mail"]

    (body,) = hook.bodies
    assert body["link"] == HEALTH and body["kind"] == "supervisor"
    assert body["summary"] == (
        "Streaming supervisor: revenue_by_category stalled: driver pid 4242 sent no heartbeat "
        "for 45 s (frozen), lag 120; stopping it and restarting (also conversion_funnel "
        "stalled); stopped driver pid 4242; a new streaming run is starting."
    )
    assert mail.subjects() == [f"[ecommerce pipeline] {body['summary']}"]
    # Ten seconds later the supervisor sees the same frozen driver: no second page.
    assert supervisor_alert(settings, verdicts, done, now=time.time() + 10) == []
    assert len(hook.bodies) == 1 and len(mail.messages) == 1


def make_topic(settings: Settings, topic: str) -> None:
    client = admin(settings.bootstrap_servers)
    try:
        client.create_topics([NewTopic(topic, 3, 1)])
    finally:
        client.close()


def send_dead_letters(settings: Settings, topic: str, count: int) -> None:
    """`count` dead letters in one transaction, as the streaming app writes them: the commit
    marker takes an offset of its own in the partition, and is no dead letter."""
    from confluent_kafka import Producer

    out = Producer(
        {**confluent_kafka_options(settings), "transactional.id": f"alerts-test-{topic}"}
    )
    out.init_transactions(30)
    out.begin_transaction()
    for i in range(count):
        out.produce(
            topic, key=f"ecommerce-events|0|{i}".encode(), value=b'{"reason": "x"}', partition=0
        )
    out.commit_transaction(30)


def test_the_watcher_fires_on_a_dead_letter_and_holds_back_inside_the_interval(
    receivers, monkeypatch
):
    """The asset's own trigger (the Kafka provider's, with its connection from the
    environment) run as the triggerer runs it."""
    topic = "alerts-watch-dlq"
    monkeypatch.setenv("ECOM_KAFKA__DEAD_LETTER_TOPIC", topic)
    settings = Settings()
    make_topic(settings, topic)
    (watcher,) = dead_letters.dead_letter_asset(settings).watchers
    trigger = watcher.trigger
    assert trigger.kafka_config_id == DEAD_LETTER_CONN_ID

    async def first_event():
        events = trigger.run()
        task = asyncio.ensure_future(events.__anext__())
        # The group starts at the topic's end: write until the consumer has joined.
        sent = 0
        while not task.done():
            await asyncio.to_thread(send_dead_letters, settings, topic, 1)
            sent += 1
            await asyncio.wait([task], timeout=2)
        await trigger.cleanup()
        return task.result(), sent

    event, sent = asyncio.run(asyncio.wait_for(first_event(), 60))
    assert sent >= 1
    payload = event.payload
    assert set(payload) == {"partition", "offset", "timestamp_ms"}
    assert abs(payload["timestamp_ms"] / 1000 - time.time()) < 60

    # Right after an alert, a dead letter fires nothing: it waits for the next count.
    dead_letters.gate(settings).sent(dead_letters.KEY, time.time(), offsets={})

    class Record:
        def timestamp(self):
            return (1, 1)

        def partition(self):
            return 0

        def offset(self):
            return 5

    assert dead_letters.seen(Record()) is None


def test_dead_letters_alert_once_per_interval_and_count_the_rest(receivers, monkeypatch):
    topic = "alerts-report-dlq"
    monkeypatch.setenv("ECOM_KAFKA__DEAD_LETTER_TOPIC", topic)
    monkeypatch.setenv("ECOM_ALERTS__DEAD_LETTER_INTERVAL_SECONDS", "2")
    settings = Settings()
    _, hook, mail = receivers
    make_topic(settings, topic)
    send_dead_letters(settings, topic, 4)  # before the watch: not counted
    first_ms = int(time.time() * 1000)
    time.sleep(0.05)
    send_dead_letters(settings, topic, 5)

    waits: list[float] = []

    def sleep(seconds: float) -> None:
        # While the DAG waits out the interval, the flood goes on: 3 more, then quiet.
        if not waits:
            send_dead_letters(settings, topic, 3)
        waits.append(seconds)
        time.sleep(seconds)

    started = time.time()
    alerts = dead_letters.report(settings, settings.bootstrap_servers, first_ms, sleep)
    assert [a.text.split(" in ")[0] for a in alerts] == ["5 dead letters", "3 dead letters"]
    assert hook.texts() == [f"{a.text} {HEALTH}" for a in alerts]
    assert len(mail.messages) == 2
    assert f"in {topic} since " in alerts[0].text
    # One alert per interval: the second came an interval after the first.
    assert len(waits) == 2 and all(1 < w <= 2 for w in waits)
    assert time.time() - started >= 4

    # Nothing new: a run that finds no dead letter since the last alert says nothing.
    assert dead_letters.report(settings, settings.bootstrap_servers, None, sleep) == []
    assert len(hook.bodies) == 2 and len(mail.messages) == 2


def test_silent_when_all_is_well(receivers):
    settings, hook, mail = receivers
    now = time.time()
    running = classify(
        Observation(
            "revenue_by_category",
            Holder(pid=1, host="h", query="q", started=now - 60, heartbeat=now - 1),
            3,
            3,
            5.0,
            {"0": 0},
        ),
        settings.supervisor,
        now,
    )
    assert running.action == "none"
    assert supervisor_alert(settings, [v for v in [running] if v.action != "none"], "x") == []
    # A manual run of the dead-letter DAG with no dead letter: it only starts counting.
    assert dead_letters.report(settings, settings.bootstrap_servers, None) == []
    assert hook.bodies == [] and mail.messages == []
