"""What the DAGs attach and the supervisor calls: a task that failed for good, and the
supervisor stopping or restarting the streaming driver, each become one alert."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from include.alerts.gate import Gate
from include.alerts.messages import base_url, supervisor_acted, task_failed
from include.alerts.notify import send
from include.settings import Settings, get_settings

log = logging.getLogger(__name__)

SUPERVISOR_GATE_FILE = "alerts/supervisor.json"
TASK_GATE_FILE = "alerts/tasks.json"


class TaskFailureAlert(BaseNotifier):
    """Every DAG's ``on_failure_callback`` (through :func:`include.dag_defaults.default_args`):
    a task that failed for good, its retries used up, is one alert with its log's link.
    The settings are read when it fires, so a changed channel needs no DAG re-parse."""

    def notify(self, context: Any) -> None:
        """Send the failure on every channel that is on, unless the same task's failure was
        alerted within ``[alerts] repeat_seconds`` (a task of a frequent DAG failing on
        every run is one alert per interval, not one per run)."""
        settings = get_settings()
        ti = context["ti"]
        key = f"{ti.dag_id}.{ti.task_id}"
        gate = Gate(settings.paths.metrics_dir / TASK_GATE_FILE)
        now = time.time()
        if gate.wait(key, settings.alerts.repeat_seconds, now) > 0:
            gate.hold_back(key)
            log.info("%s failed again; not alerting again yet ([alerts] repeat_seconds)", key)
            return
        send(settings, task_failed(context, gate.held_back(key)), context)
        gate.sent(key, now)


def supervisor_alert(
    settings: Settings, acted: Iterable[Any], done: str, now: float | None = None
) -> list[str]:
    """The supervisor stopped or restarted streaming for the ``acted`` verdicts: one alert,
    unless the same queries in the same state (and the same driver) were alerted within
    ``[alerts] repeat_seconds``.  Returns the channels that took it; never raises."""
    acted = list(acted)
    if not acted:
        return []
    now = now or time.time()
    first = acted[0]
    key = f"{first.state}|{first.driver_pid}|{','.join(sorted(v.query for v in acted))}"
    gate = Gate(settings.paths.metrics_dir / SUPERVISOR_GATE_FILE)
    try:
        if gate.wait(key, settings.alerts.repeat_seconds, now) > 0:
            gate.hold_back(key)
            log.info("not alerting again yet (within [alerts] repeat_seconds): %s", first.reason)
            return []
        held = gate.held_back(key)
        if held:
            done += f" ({held} more time{'s' if held > 1 else ''} since the last alert)"
        others = [f"{v.query} {v.state}" for v in acted[1:]]
        delivered = send(settings, supervisor_acted([first.reason], others, done, base_url()))
        gate.sent(key, now)
        return delivered
    except Exception as error:  # alerting must never stop supervision
        log.error("could not send the supervisor's alert: %s", error)
        return []
