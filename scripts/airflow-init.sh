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
airflow pools set streaming 1 "one streaming driver per set of checkpoints"
echo "Airflow is ready: log in as admin with AIRFLOW_ADMIN_PASSWORD"
