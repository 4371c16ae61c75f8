"""docker compose's own start steps, run inside the project's image.

``python -m include.runtime.compose_init pipeline --api-url http://airflow-apiserver:8080``
(the one-shot service ``pipeline-init``) does for the cluster what `make up` does locally once
its services run: it logs in to Airflow's REST API as the platform's admin, makes sure of the
one-slot ``streaming`` pool, and, unless ``ECOM_AUTOSTART=0``, starts the pipeline with
:func:`include.runtime.cli.start_pipeline_runs` (``provision_topics`` to success, then one
``producer`` and one ``streaming`` run unless one is already active).  So a second
``docker compose up`` starts nothing twice.  The admin's password comes from the environment
(``AIRFLOW_ADMIN_PASSWORD``, from .env), never from the command line.

``python -m include.runtime.compose_init spark-history`` (the service ``spark-history``) runs
the Spark History Server as the local platform does (:class:`SparkHistoryServer`: the same
properties, the event log directory made first), in the foreground, replacing this process.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from include.runtime.airflow_api import AirflowApi
from include.runtime.procs import AUTOSTART_ENV, PlatformError, autostart_wanted
from include.runtime.spark_history import SparkHistoryServer
from include.settings import Settings, get_settings
from include.settings.base import STREAMING_POOL

PASSWORD_ENV = "AIRFLOW_ADMIN_PASSWORD"
# The API server is healthy before this runs (compose's depends_on), but its login may
# still answer errors for a moment after its first start.
LOGIN_TIMEOUT_SECONDS = 120.0


def say(message: str) -> None:
    """A progress line, as the platform's CLI prints them."""
    print(f"[platform] {message}", flush=True)


def admin_password() -> str:
    """The admin's password from the environment; PlatformError, saying where to set it,
    when it is not there."""
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise PlatformError(f"{PASSWORD_ENV} is not set: set it in .env (see .env.example)")
    return password


def login(api: AirflowApi, timeout: float = LOGIN_TIMEOUT_SECONDS) -> None:
    """Log in, retrying every 3 s while the API server refuses or cannot be reached; the last
    refusal as a PlatformError after `timeout` seconds."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            api.login()
            return
        except (PlatformError, requests.RequestException) as exc:
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"could not log in to Airflow at {api.base_url} as {api.username!r} "
                    f"within {timeout:.0f}s: {exc}"
                ) from None
            time.sleep(3)


def start_pipeline(settings: Settings, api_url: str, autostart: bool) -> None:
    """The streaming pool and, when `autostart`, the pipeline's runs, through the API server
    at `api_url`; each step is skipped when already done."""
    from include.runtime.cli import start_pipeline_runs

    api = AirflowApi(api_url.rstrip("/"), settings.airflow.admin_user, admin_password())
    say(f"logging in to Airflow at {api.base_url} as {api.username}")
    login(api)
    # One slot: Airflow never runs two streaming drivers at once (as `make up` does).
    api.ensure_pool(STREAMING_POOL, 1, "one streaming driver per set of checkpoints")
    if not autostart:
        say(f"{AUTOSTART_ENV}=0: the pipeline is not started; trigger its DAGs in the Airflow UI")
        return
    start_pipeline_runs(settings, api)
    say("the pipeline runs: producer and streaming are started, provision_topics succeeded")


def run_history_server(settings: Settings) -> None:
    """The Spark History Server in the foreground, as the local service runs it (this process
    becomes it, so compose's signals reach the JVM)."""
    server = SparkHistoryServer(settings)
    server.prepare()
    command = server.command()
    say(f"starting the Spark History Server on port {settings.spark_history.port}")
    sys.stdout.flush()
    os.execvpe(command[0], command, server.environment())


def main(argv: list[str] | None = None) -> int:
    """The command line; 2 after a PlatformError (printed to stderr)."""
    parser = argparse.ArgumentParser(prog="compose_init", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pipeline = sub.add_parser("pipeline", help="the streaming pool and the pipeline's runs")
    pipeline.add_argument(
        "--api-url", required=True, help="Airflow's API server, e.g. http://airflow-apiserver:8080"
    )
    sub.add_parser("spark-history", help="the Spark History Server, in the foreground")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        if args.command == "pipeline":
            start_pipeline(settings, args.api_url, autostart_wanted())
        else:
            run_history_server(settings)
    except PlatformError as exc:
        print(f"[platform] ERROR: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
