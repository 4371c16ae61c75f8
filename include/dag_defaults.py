"""What every DAG of the platform shares, declared once: owner, retries, start date, ids.

A DAG file says only what is its own.  A DAG that needs other retries passes them to
:func:`default_args` and says why in a comment.  Dates are pendulum's, in UTC: Airflow's
own convention, and the same instant on every host whatever its local zone.
"""

from __future__ import annotations

from typing import Any

import pendulum

OWNER = "data-platform"
# In the past, with catch-up off: a schedule starts from now, manual DAGs run when asked.
START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
# A task that failed on a passing hiccup (a broker election, a slow API) gets one more try.
RETRIES = 1
# The long-running streaming DAG: the supervisor and the scheduled restart both start it.
STREAMING_DAG = "streaming"
# The scheduled graceful restart of the streaming driver (the supervisor leaves its work to it).
RESTART_DAG = "streaming_restart"


def default_args(**overrides: Any) -> dict[str, Any]:
    """A fresh ``default_args`` dict: the shared defaults, with ``overrides`` on top.  Every
    task's final failure is an alert (``[alerts]``; off until a channel is set)."""
    from include.alerts.callbacks import TaskFailureAlert

    return {
        "owner": OWNER,
        "retries": RETRIES,
        "on_failure_callback": [TaskFailureAlert()],
        **overrides,
    }
