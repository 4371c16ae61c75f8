#!/usr/bin/env bash
# docker compose: prepare Airflow once before its components start.
# The admin password comes from the environment (.env), never from the image or the repo.
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
airflow db migrate
umask 077
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path, "w") as handle:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, handle)
PY
# The schema registry's own role and database in the same PostgreSQL (it waits for this).
: "${REGISTRY_DB_PASSWORD:?set REGISTRY_DB_PASSWORD in .env}"
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
airflow pools set streaming 1 "one streaming driver per set of checkpoints"
echo "Airflow is ready: log in as admin with AIRFLOW_ADMIN_PASSWORD"
