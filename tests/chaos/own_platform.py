"""The campaign's platform of its own: its environment, and the streaming run it starts.

`make chaos` and the end-to-end test bring a platform up with this environment (a fresh
state dir, free ports, nothing started by itself); `make chaos` then starts streaming here.
"""

from __future__ import annotations

import time
from pathlib import Path

from include.runtime.airflow_api import AirflowApi
from include.runtime.procs import free_port
from include.settings import Settings

FROZEN_AFTER_SECONDS = 15  # lease heartbeat age that makes the supervisor call a driver frozen


def platform_env(state: Path, supervisor_interval: int) -> dict[str, str]:
    """A platform of its own: a fresh state dir and free ports, nothing started by itself,
    and a supervisor that looks every `supervisor_interval` seconds."""
    return {
        "ECOM_STATE_DIR": str(state),
        "ECOM_KAFKA__PORT": str(free_port()),
        "ECOM_KAFKA__CONTROLLER_PORT": str(free_port()),
        "ECOM_POSTGRES__PORT": str(free_port()),
        "ECOM_REGISTRY__PORT": str(free_port()),
        "ECOM_REGISTRY__MANAGEMENT_PORT": str(free_port()),
        "ECOM_AIRFLOW__PORT": str(free_port()),
        "ECOM_SPARK_HISTORY__PORT": str(free_port()),
        "ECOM_AUTOSTART": "0",
        "ECOM_SUPERVISOR__INTERVAL_SECONDS": str(supervisor_interval),
        "ECOM_SUPERVISOR__FROZEN_AFTER_SECONDS": str(FROZEN_AFTER_SECONDS),
    }


def start_streaming(settings: Settings, api: AirflowApi) -> None:
    """Topics, then a streaming run; the DAGs the campaign does not exercise are paused."""
    deadline = time.monotonic() + 180
    while not all(api.dag_exists(d) for d in ("provision_topics", "streaming", "supervisor")):
        if time.monotonic() > deadline:
            raise RuntimeError("the DAGs did not load in 180 s; see the dag-processor log")
        time.sleep(3)
    for dag_id in ("data_quality", "streaming_restart", "producer", "backfill"):
        api.pause(dag_id)
    run = api.trigger("provision_topics")
    if api.wait_for_run("provision_topics", run, {"success"}, timeout=300) != "success":
        raise RuntimeError("provision_topics failed; see its task log")
    api.trigger("streaming")
