"""Roles against the real API server (FAB auth manager, real PostgreSQL): a viewer, an
operator and an admin, made with the platform's own command (include/runtime/users.py), and a
user whose role (FAB's Public) may read nothing.

Each may or may not see every ``/ecom`` page and the metrics route, and trigger, clear, pause
and backfill a DAG, exactly as the README's table of roles says: what is refused is a 403
from Airflow itself or from the pages' app, and nothing refused changed anything.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import requests

from include.runtime.airflow import airflow_environment
from include.runtime.secrets import metrics_token, platform_secrets
from include.runtime.tools import venv_bin
from include.settings import Settings
from include.settings.base import PROJECT_ROOT
from tests.ui.test_plugin_pages import PAGES

pytestmark = pytest.mark.ui

PEOPLE = {"vera": "viewer", "otto": "operator", "nobody": None}
# What each of the README's roles may do (None: a user whose role grants nothing).
MAY_READ = {"viewer": True, "operator": True, "admin": True, None: False}
MAY_RUN = {"viewer": False, "operator": True, "admin": True, None: False}
DAG = "data_quality"


def password_of(name: str) -> str:
    return f"{name}-pass-word-1"


def users_command(settings: Settings, *args: str, password: str) -> subprocess.CompletedProcess:
    """`python -m include.runtime.users <args>` as `make user` runs it, password on stdin."""
    return subprocess.run(
        [str(venv_bin() / "python"), "-m", "include.runtime.users", *args],
        input=password + "\n",
        env=airflow_environment(settings),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )


PUBLIC_USER = """
import sys
from include.runtime.users import _security_manager
with _security_manager() as sm:
    sm.add_user("nobody", "no", "body", "nobody@localhost", sm.find_role("Public"),
                sys.stdin.readline().strip())
"""


@pytest.fixture(scope="module")
def people(airflow) -> dict[str | None, dict[str, str]]:
    """Role -> the Authorization header of a user with that role (None: the Public one)."""
    settings, _, base = airflow
    for name, role in PEOPLE.items():
        if role is None:
            made = subprocess.run(
                [str(venv_bin() / "python"), "-c", PUBLIC_USER],
                input=password_of(name) + "\n",
                env=airflow_environment(settings),
                capture_output=True,
                text=True,
                cwd=PROJECT_ROOT,
            )
        else:
            made = users_command(settings, "add", name, "--role", role, password=password_of(name))
        assert made.returncode == 0, made.stderr[-2000:]
    credentials = {role: (name, password_of(name)) for name, role in PEOPLE.items()}
    credentials["admin"] = (
        settings.airflow.admin_user,
        platform_secrets(settings)["airflow_admin_password"],
    )
    headers = {}
    for role, (name, password) in credentials.items():
        answer = requests.post(
            f"{base}/auth/token", json={"username": name, "password": password}, timeout=30
        )
        assert answer.status_code == 201, f"{name} could not log in: {answer.text[:300]}"
        headers[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    return headers


def test_users_command_lists_roles_and_refuses_what_it_cannot_do(airflow, people) -> None:
    settings, _, _ = airflow
    listed = users_command(settings, "list", password="")
    assert listed.returncode == 0, listed.stderr
    rows = dict(line.split(None, 1) for line in listed.stdout.splitlines())
    assert rows["vera"].strip() == "viewer" and rows["otto"].strip() == "operator"
    assert rows[settings.airflow.admin_user].strip() == "admin"
    short = users_command(settings, "add", "eve", "--role", "viewer", password="short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    assert "eve" not in users_command(settings, "list", password="").stdout
    # The password never shows: not in the output, not in the process' arguments.
    again = users_command(settings, "add", "vera", "--role", "viewer", password=password_of("v"))
    assert again.returncode == 0 and "password replaced" in again.stdout
    assert password_of("v") not in again.stdout + again.stderr
    back = users_command(settings, "add", "vera", "--role", "viewer", password=password_of("vera"))
    assert back.returncode == 0, back.stderr


def test_every_page_and_the_metrics_follow_the_role(airflow, people) -> None:
    settings, _, base = airflow
    for role, auth in people.items():
        for page in PAGES:
            answer = requests.get(base + page, headers=auth, timeout=30)
            expected = 200 if MAY_READ[role] else 403
            assert answer.status_code == expected, f"{role}: {page} answered {answer.status_code}"
        metrics = requests.get(f"{base}/ecom/metrics", headers=auth, timeout=30)
        assert metrics.status_code == (200 if MAY_READ[role] else 403), (role, metrics.text)
    refused = requests.get(f"{base}/ecom/health", headers=people[None], timeout=30)
    assert "viewer role" in refused.text, refused.text
    # Prometheus keeps its own bearer token, and nothing else gets in without a login.
    token = {"Authorization": f"Bearer {metrics_token(settings)}"}
    assert requests.get(f"{base}/ecom/metrics", headers=token, timeout=30).status_code == 200
    assert requests.get(f"{base}/ecom/metrics", timeout=30).status_code == 401


def call(base: str, auth: dict, method: str, path: str, **body) -> requests.Response:
    return requests.request(method, f"{base}/api/v2{path}", headers=auth, timeout=30, **body)


def test_trigger_clear_pause_and_backfill_follow_the_role(airflow, people) -> None:
    _, _, base = airflow
    admin = people["admin"]
    for role, auth in people.items():
        allowed = MAY_RUN[role]
        before = call(base, admin, "GET", f"/dags/{DAG}/dagRuns").json()["total_entries"]
        trigger = call(base, auth, "POST", f"/dags/{DAG}/dagRuns", json={"logical_date": None})
        after = call(base, admin, "GET", f"/dags/{DAG}/dagRuns").json()["total_entries"]
        assert trigger.status_code == (200 if allowed else 403), (role, trigger.text)
        assert after == before + allowed, f"{role}: {before} runs before, {after} after"

        clear = call(base, auth, "POST", f"/dags/{DAG}/clearTaskInstances", json={"dry_run": False})
        assert clear.status_code == (200 if allowed else 403), (role, clear.text)

        pause = call(base, auth, "PATCH", f"/dags/{DAG}", json={"is_paused": True})
        assert pause.status_code == (200 if allowed else 403), (role, pause.text)
        assert call(base, admin, "GET", f"/dags/{DAG}").json()["is_paused"] is allowed
        call(base, admin, "PATCH", f"/dags/{DAG}", json={"is_paused": False})

        day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
        backfill = call(
            base,
            auth,
            "POST",
            "/backfills",
            json={
                "dag_id": "backfill",
                "from_date": day.isoformat(),
                "to_date": day.isoformat(),
                "reprocess_behavior": "completed",
                "max_active_runs": 1,
            },
        )
        assert backfill.status_code == (200 if allowed else 403), (role, backfill.text)
        if allowed:  # one backfill of a DAG at a time: cancel it before the next role's
            cancel = call(base, auth, "PUT", f"/backfills/{backfill.json()['id']}/cancel")
            assert cancel.status_code == 200, cancel.text
