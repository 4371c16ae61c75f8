"""A small client for Airflow's REST API (/api/v2), used by `make up` and the end-to-end test.

Authentication is the API's own: POST /auth/token with the admin credentials returns a JWT
(`access_token`) that goes into the Authorization header of every later call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import requests

from include.runtime.procs import PlatformError

TERMINAL_STATES = {"success", "failed"}


@dataclass
class AirflowApi:
    """Calls to one Airflow API server as `username`.  A call refused with 401 before any login
    logs in and retries; any other answer outside 2xx raises PlatformError."""

    base_url: str
    username: str
    password: str
    timeout: float = 30.0
    _session: requests.Session = field(default_factory=requests.Session, repr=False)

    def login(self) -> None:
        """Get a token for the credentials and send it with every later call; PlatformError when
        refused."""
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=self.timeout,
        )
        if response.status_code >= 300:
            raise PlatformError(
                f"Airflow refused the login for {self.username!r}: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        token = response.json()["access_token"]
        self._session.headers["Authorization"] = f"Bearer {token}"

    def _call(self, method: str, path: str, **kwargs) -> dict:
        response = self._session.request(
            method, f"{self.base_url}/api/v2{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code == 401 and "Authorization" not in self._session.headers:
            self.login()
            return self._call(method, path, **kwargs)
        if response.status_code >= 300:
            raise PlatformError(
                f"Airflow API {method} {path} answered HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json() if response.content else {}

    def dag(self, dag_id: str) -> dict:
        """The DAG's details."""
        return self._call("GET", f"/dags/{dag_id}")

    def dag_exists(self, dag_id: str) -> bool:
        """Whether the API answers for the DAG (False on any error answer)."""
        try:
            self.dag(dag_id)
            return True
        except PlatformError:
            return False

    def ensure_pool(self, name: str, slots: int, description: str) -> None:
        """Create the pool, or set its slots back to `slots` if someone changed them."""
        try:
            pool = self._call("GET", f"/pools/{name}")
        except PlatformError:
            self._call(
                "POST", "/pools", json={"name": name, "slots": slots, "description": description}
            )
            return
        if pool.get("slots") != slots:
            self._call("PATCH", f"/pools/{name}", json={"name": name, "slots": slots})

    def unpause(self, dag_id: str) -> None:
        """Unpause the DAG."""
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        """Pause the DAG."""
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        """Start a run of the DAG now, with `conf`; returns its run id."""
        run = self._call(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}}
        )
        return run["dag_run_id"]

    def create_backfill(self, dag_id: str, from_date: datetime, to_date: datetime) -> dict:
        """Backfill the DAG's runs whose logical date lies in [from_date, to_date] (both
        included), rerunning any that already ran, one at a time; the backfill as the API
        returns it (``id``, ...)."""
        body = {
            "dag_id": dag_id,
            "from_date": from_date.isoformat(),
            "to_date": to_date.isoformat(),
            "reprocess_behavior": "completed",
            "max_active_runs": 1,
        }
        return self._call("POST", "/backfills", json=body)

    def finish_run(self, dag_id: str, run_id: str, note: str) -> None:
        """Mark a running DAG run successful; Airflow then stops its running tasks."""
        self._call(
            "PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "success", "note": note}
        )

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The state of a DAG run (queued, running, success, failed)."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def runs(self, dag_id: str, state: str | None = None) -> list[dict]:
        """The DAG's runs as the API lists them by default (its first page), only those in `state`
        when given."""
        params = {"state": state} if state else {}
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def runs_of_type(self, dag_id: str, run_type: str) -> list[dict]:
        """The DAG's runs of one type (scheduled, manual, backfill, ...), first page."""
        path = f"/dags/{dag_id}/dagRuns"
        return self._call("GET", path, params={"run_type": run_type, "limit": 100})["dag_runs"]

    def run_count(self, dag_id: str) -> int:
        """How many runs the DAG has had, in any state."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1})["total_entries"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """The task instances of a DAG run."""
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def task_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
        """The extra links (name -> URL) of a task instance, e.g. "Quality report"."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return self._call("GET", path)["extra_links"]

    def page(self, path: str) -> requests.Response:
        """A page of the API server outside /api/v2 (the plugin's), with this login."""
        return self._session.get(f"{self.base_url}{path}", timeout=self.timeout)

    def health(self) -> dict:
        """The API server's health report: per component, its status."""
        return self._call("GET", "/monitor/health")

    def wait_for_run(self, dag_id: str, run_id: str, states: set[str], timeout: float) -> str:
        """Poll a DAG run until it reaches one of `states` (or any terminal state)."""
        deadline = time.monotonic() + timeout
        state = "unknown"
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in states or state in TERMINAL_STATES:
                return state
            time.sleep(2)
        raise PlatformError(
            f"timed out after {timeout:.0f}s waiting for {dag_id} run {run_id} to become "
            f"{'/'.join(sorted(states))}; it is {state}"
        )

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float
    ) -> str:
        """Poll a task instance every 2 s until it is in one of `states`, and return that state;
        PlatformError when it fails or upstream failed, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            for ti in self.task_instances(dag_id, run_id):
                if ti["task_id"] == task_id:
                    state = ti["state"]
            if state in states:
                return state
            if state in {"failed", "upstream_failed"}:
                raise PlatformError(f"{dag_id}.{task_id} in run {run_id} is {state}")
            time.sleep(2)
        raise PlatformError(
            f"timed out after {timeout:.0f}s waiting for {dag_id}.{task_id} to be "
            f"{'/'.join(sorted(states))}; it is {state}"
        )
