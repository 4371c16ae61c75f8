"""One real Airflow API server on a real PostgreSQL for the UI tests, over a state dir
crafted by tests/ui/pipeline_state.py; the platform's DAGs serialized into its database
(`airflow dags reserialize`) so that runs can be triggered, cleared and backfilled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from include.runtime.airflow import AirflowComponent, airflow_cli, migrate_airflow_db
from include.runtime.postgres import Postgres
from include.runtime.procs import free_port
from include.settings import Settings
from tests.ui.pipeline_state import Crafted, build


@pytest.fixture(scope="package")
def airflow(tmp_path_factory) -> Iterator[tuple[Settings, Crafted, str]]:
    """(settings, the crafted state, the API server's base URL)."""
    env = {
        "ECOM_STATE_DIR": str(tmp_path_factory.mktemp("ui_state")),
        "ECOM_POSTGRES__PORT": str(free_port()),
        "ECOM_AIRFLOW__PORT": str(free_port()),
        "ECOM_KAFKA__PORT": str(free_port()),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings()
        crafted = build(settings, datetime.now(UTC))
        services = [Postgres(settings), AirflowComponent("api-server", settings)]
        # A state dir from before the FAB auth manager: the simple one's passwords file.
        old_passwords = settings.paths.airflow_home / "passwords.json"
        old_passwords.parent.mkdir(parents=True, exist_ok=True)
        old_passwords.write_text(json.dumps({settings.airflow.admin_user: "an-old-password"}))
        try:
            services[0].start()
            migrate_airflow_db(settings)
            assert not old_passwords.exists(), "the upgrade left the old passwords file"
            reserialized = airflow_cli(settings, "dags", "reserialize", check=False)
            assert reserialized.returncode == 0, reserialized.stderr[-2000:]
            services[1].start()
            yield settings, crafted, f"http://{settings.bind_host}:{settings.airflow.port}"
        finally:
            for service in reversed(services):
                service.stop(timeout=30)
