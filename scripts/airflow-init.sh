#!/usr/bin/env bash
# docker compose: prepare Airflow once before its components start (the one-shot service
# airflow-init; safe to run again: every step keeps what is already there).
# The admin password comes from the environment (.env), never from the image, the repo or a
# command line.
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
: "${REGISTRY_DB_PASSWORD:?set REGISTRY_DB_PASSWORD in .env}"

# The metadata schema, the FAB auth manager's users and roles tables with it.
airflow db migrate

# The platform's admin ([airflow] admin_user) with the role admin; an existing one gets the
# password of .env again. The password goes in on stdin.
admin_user=$(python -c 'from include.settings import get_settings; print(get_settings().airflow.admin_user)')
printf '%s' "$AIRFLOW_ADMIN_PASSWORD" | python -m include.runtime.users add "$admin_user" --role admin

# The schema registry's own role and database in the same PostgreSQL (it waits for this).
python - <<'PY'
import os

import psycopg2
from sqlalchemy.engine import make_url

from include.runtime.postgres import ensure_role_and_database

url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
conn = psycopg2.connect(
    host=url.host, port=url.port or 5432, user=url.username, password=url.password,
    dbname=url.database,
)
ensure_role_and_database(conn, "registry", "registry", os.environ["REGISTRY_DB_PASSWORD"])
conn.close()
PY
echo "Airflow is ready: log in as $admin_user with AIRFLOW_ADMIN_PASSWORD"
echo "(pipeline-init creates the streaming pool and starts the pipeline once Airflow runs)"
