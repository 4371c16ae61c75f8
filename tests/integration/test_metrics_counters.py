"""The counters Prometheus rates, end to end: a real driver reading a real broker, the
plugin's app exposing ``/ecom/metrics``, Debian's Prometheus scraping it every second.

1. A state dir and topics of their own; the streaming driver on them; the app under uvicorn
   in this process; Prometheus scraping with the token file.
2. The producer runs for a moment (its totals go where the producer task's go): the events
   sent, as Kafka's end offsets count them, are ``ecom_producer_events_sent_total``, and
   once the driver has read them, ``ecom_input_rows_total``.
3. The test sends events of its own, valid ones and malformed ones (each one dead letter):
   ``increase()`` and ``rate()`` of the rows counter between the scrape before and the scrape
   after are the events the test sent; of the dead letters, the malformed ones.  Batches
   are the commits in the checkpoint, rows out per output the rows of its Delta table.
4. kill -9 of the idle driver, a new one, more events: the counters go on from where they
   were (no reset Prometheus would see), and count the new events once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import uvicorn
from deltalake import DeltaTable

from include.analytics import QUERIES
from include.generators import EventGenerator
from include.kafka.client import end_offsets, producer
from include.kafka.topics import provision
from include.metrics import producer_totals_path
from include.producer import ProducerParams, run_producer
from include.runtime.procs import free_port
from include.runtime.secrets import metrics_token
from include.runtime.tools import prometheus_binary
from include.settings import Settings
from include.ui.app import create_app
from tests.conftest import poll
from tests.integration.conftest import isolated_settings
from tests.integration.dataset import MALFORMED, as_bytes
from tests.integration.streaming import launch, said_wrong

pytestmark = pytest.mark.integration

APP_ARGS = ("--trigger-seconds", "1")
VALID = 300  # the test's own valid events in step 3
AFTER_RESTART = 50  # and in step 4
JOB = "counters"


@pytest.fixture(scope="module")
def counted(kafka, platform_env, tmp_path_factory) -> Iterator[tuple[Settings, str]]:
    """The isolated settings and the Prometheus URL, with the driver, the app and
    Prometheus running on them."""
    with isolated_settings(tmp_path_factory, "counters") as settings:
        provision(settings)
        metrics_token(settings)  # the file Prometheus sends, before its first scrape
        server = uvicorn.Server(
            uvicorn.Config(create_app(), host="127.0.0.1", port=free_port(), log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        poll(lambda: server.started, bool, "uvicorn to start", timeout=30, interval=0.1)
        port = server.servers[0].sockets[0].getsockname()[1]
        work = tmp_path_factory.mktemp("counters_prometheus")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "metrics_path": "/metrics",  # the app's own path; Airflow mounts it at /ecom
                    "authorization": {"credentials_file": str(settings.paths.metrics_token_file)},
                    "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                }
            ],
        }
        (work / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        prometheus_port = free_port()
        with open(work / "prometheus.log", "wb") as prometheus_log:
            prometheus = subprocess.Popen(
                [
                    str(prometheus_binary(settings)),
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                stdout=prometheus_log,
                stderr=subprocess.STDOUT,
            )
        try:
            yield settings, f"http://127.0.0.1:{prometheus_port}"
        finally:
            prometheus.terminate()
            prometheus.wait(30)
            server.should_exit = True
            thread.join(10)


def series(metric: str) -> str:
    """The selector of `metric` (``name`` or ``name{label="value"}``) in this test's job."""
    name, _, labels = metric.partition("{")
    return f'{name}{{job="{JOB}"' + (f",{labels}" if labels else "}")


def query(prometheus: str, expr: str, at: float | None = None) -> list[dict]:
    """The result of a PromQL query (now, or at Unix time `at`); [] while there is none."""
    params = {"query": expr} | ({} if at is None else {"time": f"{at:.3f}"})
    try:
        answer = requests.get(f"{prometheus}/api/v1/query", params=params, timeout=5).json()
    except (requests.ConnectionError, ValueError):
        return []  # Prometheus still starting
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def one(prometheus: str, expr: str, at: float | None = None) -> float | None:
    found = query(prometheus, expr, at)
    assert len(found) <= 1, found
    return float(found[0]["value"][1]) if found else None


def scraped(prometheus: str, metric: str) -> list[tuple[float, float]]:
    """Every sample Prometheus scraped of `metric` in the last 10 minutes: (time, value)."""
    found = query(prometheus, f"{series(metric)}[10m]")
    return [(float(t), float(v)) for t, v in found[0]["values"]] if found else []


def await_value(prometheus: str, proc, log, metric: str, wanted: float, timeout: float) -> None:
    def fetch():
        assert proc.poll() is None, f"the driver exited {proc.returncode}: {said_wrong(log)}"
        return one(prometheus, series(metric))

    poll(fetch, lambda v: v == wanted, f"{metric} = {wanted:.0f}", timeout, interval=0.5)


def records_in(settings: Settings) -> int:
    """The records in the input topic, as Kafka counts them (its end offsets)."""
    ends = end_offsets(settings.bootstrap_servers, settings.kafka.input_topic)
    return sum(ends[settings.kafka.input_topic].values())


def send_values(settings: Settings, values: list[bytes]) -> int:
    """Send record values to the input topic; how many were acknowledged."""
    client = producer(settings.bootstrap_servers)
    sends = [client.send(settings.kafka.input_topic, key=b"counter-test", value=v) for v in values]
    acknowledged = sum(1 for s in sends if s.get(timeout=60))
    client.close()
    return acknowledged


def valid_events(count: int, seed: int) -> list[bytes]:
    """`count` platform events of the last minute, as JSON."""
    start = datetime.now(UTC) - timedelta(seconds=60)
    generator = EventGenerator(seed=seed, users=50, products=10)
    return [as_bytes(e) for e in generator.stream(start, timedelta(milliseconds=100), count)]


def increase_between(prometheus: str, metric: str, before: float, after: float) -> float:
    """increase() of `metric` over exactly the scrapes at `before` and `after` (evaluated at
    `after`, its range reaching just past `before`: nothing is extrapolated but that 1 ms)."""
    window = round((after - before) * 1000) + 1
    found = one(prometheus, f"increase({series(metric)}[{window}ms])", at=after)
    assert found is not None, f"no increase of {metric} between {before} and {after}"
    return found


def table_rows(settings: Settings, output: str) -> int:
    path = settings.paths.table_path(output)
    return DeltaTable(str(path)).to_pyarrow_dataset().count_rows() if path.exists() else 0


def committed_batches(settings: Settings) -> int:
    commits = settings.paths.pipeline_checkpoint / "commits"
    return len([p for p in commits.iterdir() if p.name.isdigit()])


def test_rate_of_the_counters_is_what_was_sent_even_across_a_driver_restart(counted) -> None:
    settings, prometheus = counted
    log = settings.paths.log_dir / "streaming-counters.log"
    rows = "ecom_input_rows_total"
    proc = launch(settings, log, *APP_ARGS)
    try:
        # 2. The producer, as its Airflow task runs it; Kafka counts what arrived.
        stats = run_producer(
            settings.bootstrap_servers,
            settings.kafka.input_topic,
            ProducerParams(rate=200, duration_seconds=1.0),
            totals=producer_totals_path(settings),
        )
        produced = records_in(settings)
        assert produced >= 150 and stats.failed == 0
        await_value(prometheus, proc, log, "ecom_producer_events_sent_total", produced, 30)
        assert one(prometheus, series("ecom_producer_events_failed_total")) == 0
        await_value(prometheus, proc, log, rows, produced, 120)  # the driver's cold start

        # 3. The test's own events, between two scrapes.
        malformed = [value for value, _ in MALFORMED]
        sent = send_values(settings, valid_events(VALID, seed=7) + malformed)
        assert sent == VALID + len(malformed)
        await_value(prometheus, proc, log, rows, produced + sent, 60)
        samples = scraped(prometheus, rows)
        before = max(t for t, v in samples if v == produced)  # the last scrape before
        after = min(t for t, v in samples if v == produced + sent)  # the first one after
        assert increase_between(prometheus, rows, before, after) == pytest.approx(sent, abs=0.5)
        window = round((after - before) * 1000) + 1
        rate = one(prometheus, f"rate({series(rows)}[{window}ms])", at=after)
        assert rate is not None and rate * window / 1000 == pytest.approx(sent, abs=0.5)
        # The dead letters of a batch are written by that batch: counted with its rows.
        for dead in ("ecom_dead_letters_total", 'ecom_output_rows_total{output="dead_letters"}'):
            assert increase_between(prometheus, dead, before, after) == pytest.approx(
                len(malformed), abs=0.5
            )

        # Batches are the checkpoint's commits; rows out per output its table's rows (no
        # batch ran twice here).  The driver is idle now: the figures hold still.
        def figures():
            out = {
                s["metric"]["output"]: float(s["value"][1])
                for s in query(prometheus, series("ecom_output_rows_total"))
            }
            return (
                (one(prometheus, series("ecom_batches_total")), out),
                (committed_batches(settings), {o: table_rows(settings, o) for o in QUERIES}),
            )

        poll(figures, lambda f: f[0] == f[1], "the counters to match the sinks", 30, 1)

        # 4. kill -9 of the idle driver; a new one goes on counting from the totals.
        counted_so_far = produced + sent
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc = launch(settings, log, *APP_ARGS)
        more = send_values(settings, valid_events(AFTER_RESTART, seed=8))
        await_value(prometheus, proc, log, rows, counted_so_far + more, 120)
        samples = scraped(prometheus, rows)
        assert [v for _, v in samples] == sorted(v for _, v in samples), "the counter went down"
        first = samples[0][0]
        assert increase_between(prometheus, rows, first, samples[-1][0]) == pytest.approx(
            counted_so_far + more - samples[0][1], abs=0.5
        )
        assert one(prometheus, f"resets({series(rows)}[10m])") == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
