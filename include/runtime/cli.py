"""`python -m include.runtime.cli up|down|status`: the platform's one entry point.

`make up`, `make down` and `make status` call this after `make setup` has built the virtualenv
and fetched the jars.  Every step says what it is doing; every failure says what to fix.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence

import psutil
import requests
from pydantic import ValidationError

from include.registry import event_subject, versions_in_words
from include.runtime.airflow import (
    AIRFLOW_COMPONENTS,
    AirflowComponent,
    airflow_environment,
    migrate_airflow_db,
)
from include.runtime.airflow_api import AirflowApi
from include.runtime.kafka import Kafka
from include.runtime.own_kafka import check_own_kafka, describe, uses_own_kafka
from include.runtime.postgres import Postgres
from include.runtime.procs import (
    PlatformError,
    autostart_wanted,
    kill_marked,
    session_members,
    wait_until,
)
from include.runtime.registry import Registry
from include.runtime.secrets import metrics_token, platform_secrets
from include.runtime.service import Service
from include.runtime.spark_history import SparkHistoryServer, history_url, streaming_driver_links
from include.runtime.spark_launch import spark_ui_url
from include.runtime.tools import jars, java_binary, venv_bin
from include.settings import Settings, get_settings
from include.settings.base import STATE_UMASK, STREAMING_POOL
from include.settings.kafka import KafkaSecurityError
from include.streaming.dead_letter_share import recent_dead_letters
from include.streaming.status import pipeline_status, status_table

PIPELINE_DAGS = ("provision_topics", "producer", "streaming", "data_quality", "supervisor")
LONG_RUNNING_DAGS = ("producer", "streaming")
TASK_SUPERVISOR = re.compile(r"^airflow worker -- [0-9a-f-]{36}$")


def all_services(settings: Settings) -> list[Service]:
    """The local platform's services, in start order; stop runs in reverse.  No Kafka broker
    when `[kafka] bootstrap_servers` names your own, no schema registry when `[registry] url`
    does.  The Spark History Server needs only the state dir: last, so the rest of the
    platform is up even when it cannot start."""
    return [
        Postgres(settings),
        *([] if uses_own_kafka(settings) else [Kafka(settings)]),
        *([] if settings.registry.url else [Registry(settings)]),
        *(AirflowComponent(c, settings) for c in AIRFLOW_COMPONENTS),
        SparkHistoryServer(settings),
    ]


def say(message: str) -> None:
    """Print a progress line of the platform command, flushed at once."""
    print(f"[platform] {message}", flush=True)


def api_client(settings: Settings) -> AirflowApi:
    """A client of the platform's Airflow API as its admin user (not logged in yet)."""
    return AirflowApi(
        f"http://{settings.bind_host}:{settings.airflow.port}",
        settings.airflow.admin_user,
        platform_secrets(settings)["airflow_admin_password"],
    )


def up(settings: Settings, start_pipeline: bool) -> None:
    """`make up`: a private state dir, java and the jars, every service not yet running in start
    order (Airflow's database migrated before its API server starts), the streaming pool, the
    pipeline's runs when `start_pipeline`, and a summary of where everything is."""
    os.umask(STATE_UMASK)
    settings.state.mkdir(parents=True, exist_ok=True)
    mode = settings.state.stat().st_mode
    # No reading or writing by others, but keep a traverse bit already there: PostgreSQL's
    # own user needs it to reach its data (postgres.Postgres), and a second `make up`
    # taking it away would lock the running server out of its files.
    settings.state.chmod(mode & ~STATE_UMASK | (mode & 0o001))
    say(f"state dir: {settings.state}")
    java_binary()
    prepare_kafka(settings)
    jars(settings, "spark")
    for service in all_services(settings):
        if isinstance(service, AirflowComponent) and service.component == "api-server":
            if not service.running():
                say("preparing Airflow's metadata database (airflow db migrate)")
                migrate_airflow_db(settings)
        t0 = time.monotonic()
        if service.start():
            say(f"started {service.name} (pid {service.pid()}) in {time.monotonic() - t0:.0f}s")
        else:
            say(f"{service.name} already running (pid {service.pid()})")
    api = api_client(settings)
    api.login()
    # One slot: Airflow never runs two streaming drivers at once (the checkpoint lease
    # refuses a second one anyway, this keeps it from even being launched).
    api.ensure_pool(STREAMING_POOL, 1, "one streaming driver per set of checkpoints")
    if start_pipeline:
        start_pipeline_runs(settings, api)
    print_summary(settings)


def prepare_kafka(settings: Settings) -> None:
    """Before any service starts: with your own Kafka, check that it answers (no broker is
    started, nor its jars fetched); else fetch the local broker's jars."""
    if uses_own_kafka(settings):
        say(f"using your Kafka at {describe(settings)}; no local broker is started")
        topics = check_own_kafka(settings)
        say(f"your Kafka answers ({topics} topics)")
    else:
        jars(settings, "kafka")


def start_pipeline_runs(settings: Settings, api: AirflowApi) -> None:
    """provision_topics, then the long-running producer and streaming runs (once each)."""
    deadline = time.monotonic() + 180
    say("waiting for the DAG processor to load the platform's DAGs")
    while not all(api.dag_exists(d) for d in PIPELINE_DAGS):
        if time.monotonic() > deadline:
            missing = [d for d in PIPELINE_DAGS if not api.dag_exists(d)]
            raise PlatformError(
                f"DAGs not loaded after 180s: {', '.join(missing)}. "
                f"See {settings.paths.log_dir / 'airflow-dag-processor.log'} for import errors."
            )
        time.sleep(3)
    for dag_id in PIPELINE_DAGS:
        api.unpause(dag_id)
    say("creating Kafka topics (DAG provision_topics)")
    run_id = api.trigger("provision_topics")
    state = api.wait_for_run("provision_topics", run_id, {"success"}, timeout=300)
    if state != "success":
        raise PlatformError(
            f"provision_topics run {run_id} ended {state}; open its task log in the Airflow UI"
        )
    for dag_id in ("producer", "streaming"):
        active = api.runs(dag_id, "running") + api.runs(dag_id, "queued")
        if active:
            run_id = active[0]["dag_run_id"]
            say(f"{dag_id} already has an active run ({run_id}); not starting another")
            continue
        say(f"starting DAG {dag_id}: run {api.trigger(dag_id)}")


def print_summary(settings: Settings) -> None:
    """Print where each part of the running platform is: URLs, the Airflow login, data,
    reports and logs."""
    sec = platform_secrets(settings)
    metrics_token(settings)  # generated now, so Prometheus can be pointed at the file
    host = settings.bind_host
    print(
        f"""
The platform is up.
  Airflow UI       http://{host}:{settings.airflow.port}
                   user: {settings.airflow.admin_user}   password: {sec["airflow_admin_password"]}
                   more users, with roles: make user ARGS="add <name> --role viewer"
  Kafka            {settings.bootstrap_servers}  (input topic {settings.kafka.input_topic})
  Schema registry  {settings.registry_url}  (subject {event_subject(settings)})
  PostgreSQL       {host}:{settings.postgres.port} (Airflow metadata, the registry's storage)
  Pipeline health  http://{host}:{settings.airflow.port}/ecom/health  (Airflow UI: Browse)
  Data quality     http://{host}:{settings.airflow.port}/ecom/quality  (log in to Airflow first)
  Spark UI         {spark_ui_url(settings)}  (the streaming driver's, while it runs)
  Spark history    {history_url(settings)}  (every driver's jobs, a killed one's too)
  Metrics          http://{host}:{settings.airflow.port}/ecom/metrics  (Prometheus text)
                   bearer token in {settings.paths.metrics_token_file}
  Sink tables      {settings.paths.table_root} (Delta Lake)
  Quality reports  {settings.paths.quality_dir}
  Streaming stats  {settings.paths.metrics_dir / "progress.jsonl"}
  Logs             {settings.paths.log_dir}
Stop everything with `make down`; see what runs with `make status`.
""",
        flush=True,
    )


def stop_pipeline_runs(settings: Settings, timeout: float = 90.0) -> None:
    """Stop the long-running tasks through Airflow before stopping Airflow itself.

    Marking a run finished makes each task's supervisor call the operator's on_kill(): the
    producer flushes, the streaming driver stops after its current micro-batch.
    """
    api = api_client(settings)
    try:
        api.login()
        if api.dag_exists("supervisor"):
            # First: it would otherwise restart the streaming driver we are about to stop.
            # `make up` unpauses it again.
            say("pausing the supervisor DAG")
            api.pause("supervisor")
        runs = [(d, r["dag_run_id"]) for d in LONG_RUNNING_DAGS for r in api.runs(d, "running")]
    except (PlatformError, requests.RequestException):
        return  # the API is not up: nothing runs through it
    for dag_id, run_id in runs:
        say(f"stopping {dag_id} run {run_id}")
        api.finish_run(dag_id, run_id, note="stopped by `make down`")
    if runs:
        scheduler = AirflowComponent("scheduler", settings)
        try:
            wait_until(
                lambda: not task_processes(scheduler), "the stopped tasks to exit", timeout=timeout
            )
        except PlatformError as exc:
            say(f"{exc}; they are ended with the scheduler")


def task_processes(scheduler: Service) -> list[psutil.Process]:
    """Airflow task supervisors ("airflow worker -- <task instance id>") and their children."""
    pid = scheduler.pid()
    if not pid or not scheduler.running():
        return []
    return [
        p for p in session_members(os.getsid(pid)) if TASK_SUPERVISOR.match(" ".join(_cmdline(p)))
    ]


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def down(settings: Settings) -> None:
    """`make down`: stop the pipeline's runs through Airflow, then every service in reverse
    start order, then any process left that carries the state dir's marker; data is kept."""
    stop_pipeline_runs(settings)
    for service in reversed(all_services(settings)):
        say(f"{service.name}: {service.stop()}")
    leftovers = kill_marked(str(settings.state))
    for proc in leftovers:
        say(f"ended leftover process {proc}")
    say("all platform processes stopped; data kept in " + str(settings.state))


def status(settings: Settings) -> int:
    """`make status`: each service's PID, port, URL and health, then each streaming query's
    state, lag and last batch from the supervisor's view, and the current and previous
    streaming drivers' runs in the Spark History Server; returns 1 when a service is not
    healthy or a query is dead or stalled, else 0."""
    rows = [("service", "pid", "port", "url", "answers")]
    unhealthy = 0
    for service in all_services(settings):
        pid = service.pid()
        running = service.running()
        answers = running and service.healthy()
        unhealthy += not answers
        state = "yes" if answers else ("NO (stale PID file)" if pid and not running else "no")
        rows.append(
            (service.name, str(pid or "-"), str(service.port or "-"), service.url or "-", state)
        )
    if uses_own_kafka(settings):
        try:
            check_own_kafka(settings, timeout_s=5)
            reachable = "yes"
        except PlatformError:
            reachable = "NO"
            unhealthy += 1
        rows.append(("kafka (yours)", "-", "-", describe(settings), reachable))
    print_table(rows)
    pipeline = pipeline_status(settings)
    checked = (
        f"the supervisor judged at {pipeline.checked_at:%Y-%m-%d %H:%M:%S} UTC"
        if pipeline.checked_at
        else "the supervisor has not judged yet"
    )
    print(f"\nStreaming queries ({checked}{'' if pipeline.watched else '; not watching now'}):")
    print_table(status_table(pipeline))
    for query in pipeline.alarms:
        print(f"ALARM {query.reason}")
    print(f"\nEvent schema: {versions_in_words(settings)}")
    print(f"\nSpark history (jobs, stages, errors of past drivers): {history_url(settings)}")
    links = streaming_driver_links(settings)
    for link in links:
        print(f"  {link.sentence()}")
    if not links:
        print("  no streaming driver has started yet")
    share = recent_dead_letters(settings)
    if share.alarming:
        print(f"\nWARNING: MOST OF THE INPUT IS BEING REFUSED. {share.sentence()}")
    return 0 if unhealthy == 0 and not pipeline.alarms else 1


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns, the first row being the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def settings_problems(exc: Exception) -> str:
    """What is wrong with the settings, in one line, without the values given (a password
    may be among them)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (2 after a PlatformError, printed to stderr)."""
    parser = argparse.ArgumentParser(prog="platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_cmd = sub.add_parser("up", help="start every service and the pipeline")
    up_cmd.add_argument(
        "--no-pipeline",
        action="store_true",
        help="start the services only; trigger no DAG (also: ECOM_AUTOSTART=0)",
    )
    sub.add_parser("down", help="stop every platform process; keep the data")
    sub.add_parser(
        "status", help="show each service and each streaming query; exit 1 if one is unwell"
    )
    airflow_cmd = sub.add_parser(
        "airflow",
        help="the airflow command line on the platform's Airflow (its database, DAGs, config)",
    )
    airflow_cmd.add_argument("arguments", nargs=argparse.REMAINDER, help="e.g. dags list")
    user_cmd = sub.add_parser(
        "user", help="Airflow users and their roles (viewer, operator, admin): add, list, remove"
    )
    user_cmd.add_argument(
        "arguments", nargs=argparse.REMAINDER, help="e.g. add alice --role viewer"
    )
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except (ValidationError, KafkaSecurityError) as exc:
        print(f"[platform] ERROR: bad settings: {settings_problems(exc)}", file=sys.stderr)
        return 2
    if args.command in ("airflow", "user"):
        # Its environment names the platform's database: a bare `airflow` finds none.
        command = (
            [str(venv_bin() / "airflow"), *args.arguments]
            if args.command == "airflow"
            else [str(venv_bin() / "python"), "-m", "include.runtime.users", *args.arguments]
        )
        os.execve(command[0], command, airflow_environment(settings))
    try:
        if args.command == "up":
            up(settings, start_pipeline=autostart_wanted() and not args.no_pipeline)
        elif args.command == "down":
            down(settings)
        else:
            return status(settings)
    except PlatformError as exc:
        print(f"[platform] ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
