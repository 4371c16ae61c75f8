"""docker-compose.yaml and the Dockerfile, checked without a Docker engine.

Debian's `docker-compose config` (installed by `make setup`) validates the compose file
against the Compose specification and resolves it; hadolint (from PyPI) lints the
Dockerfile.  The resolved file must carry the topology the README promises.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from include.settings.base import PROJECT_ROOT

SECRETS = (
    "POSTGRES_PASSWORD",
    "REGISTRY_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
)


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "docker-compose not found: make setup installs it (apt-get install docker-compose)"
        )
    return subprocess.run(
        [
            binary,
            "-f",
            str(PROJECT_ROOT / "docker-compose.yaml"),
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


@pytest.fixture(scope="module")
def filled_env(tmp_path_factory) -> Path:
    text = (PROJECT_ROOT / ".env.example").read_text()
    for name in SECRETS:
        text = re.sub(rf"^{name}=$", f"{name}=test-{name.lower()}", text, flags=re.M)
    path = tmp_path_factory.mktemp("compose") / "test.env"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def resolved(filled_env) -> dict:
    result = compose(filled_env, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_example_env_holds_no_secret_and_compose_refuses_to_start_without_them() -> None:
    example = (PROJECT_ROOT / ".env.example").read_text()
    for name in SECRETS:
        assert re.search(rf"^{name}=$", example, flags=re.M), f"{name} must be empty"
    result = compose(PROJECT_ROOT / ".env.example", "config", "-q")
    assert result.returncode != 0 and "in .env" in result.stderr
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=PROJECT_ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_three_kafka_brokers_with_replication_3_and_min_isr_2(resolved) -> None:
    brokers = {n: s for n, s in resolved["services"].items() if re.fullmatch(r"kafka-\d", n)}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    for name, service in brokers.items():
        env = service["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
        assert "healthcheck" in service and service["volumes"], name


def test_spark_master_two_workers_and_airflow_built_from_the_dockerfile(resolved) -> None:
    services = resolved["services"]
    workers = [n for n in services if n.startswith("spark-worker-")]
    assert "spark-master" in services and len(workers) == 2
    for name in workers:
        assert "spark://spark-master:7077" in services[name]["command"]
    airflow = [n for n in services if n.startswith("airflow-")]
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"} <= set(airflow)
    for name in airflow:
        assert services[name]["build"]["context"] == str(PROJECT_ROOT), name
        env = services[name]["environment"]
        assert env["AIRFLOW_CONN_SPARK_DEFAULT"].count("spark://spark-master") == 1
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert {"postgres", "kafka-ui"} <= set(services)


def test_the_schema_registry_stores_in_postgres_and_airflow_reaches_it(resolved) -> None:
    registry = resolved["services"]["schema-registry"]
    env = registry["environment"]
    assert env["APICURIO_STORAGE_KIND"] == "sql"
    assert env["APICURIO_DATASOURCE_URL"].startswith("jdbc:postgresql://postgres:")
    # Only the API is published (on loopback, checked below); the management port is not.
    published = [p if isinstance(p, str) else str(p["target"]) for p in registry["ports"]]
    assert len(published) == 1 and ":8080" in published[0], published
    airflow = resolved["services"]["airflow-scheduler"]["environment"]
    url = airflow["ECOM_REGISTRY__URL"]
    assert url.startswith("http://schema-registry:8080/")
    assert json.loads(airflow["AIRFLOW_CONN_ECOM_SCHEMA_REGISTRY"])["host"] == url


def test_every_long_running_service_has_a_healthcheck_and_loopback_ports(resolved) -> None:
    for name, service in resolved["services"].items():
        if name not in ("airflow-init", "kafka-ui"):
            assert "healthcheck" in service, name
        for port in service.get("ports", []):
            # Short syntax ("127.0.0.1:9092:9092") or long ({"host_ip": ...}).
            host = port.split(":")[0] if isinstance(port, str) else port.get("host_ip")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert {"kafka-1-data", "postgres-data", "ecom-state"} <= set(resolved["volumes"])


def test_the_compose_file_itself_contains_no_secret_values() -> None:
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    for name in SECRETS:
        for value in re.findall(rf"{name}: (\S+)", text):
            assert value.startswith("${"), f"{name} is set to a literal in docker-compose.yaml"


def test_hadolint_passes_on_the_dockerfile() -> None:
    binary = shutil.which("hadolint") or str(Path(PROJECT_ROOT / ".venv" / "bin" / "hadolint"))
    result = subprocess.run(
        [binary, str(PROJECT_ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
