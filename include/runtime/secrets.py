"""The platform's generated secrets: database, Airflow and API passwords and keys.

Made once per state dir and kept there (mode 0600), never in the repo; every service that
needs a password or key reads it from here.
"""

from __future__ import annotations

import json
import os
import secrets

from include.runtime.procs import PlatformError
from include.settings import Settings


def platform_secrets(settings: Settings) -> dict[str, str]:
    """Generated once per state dir, kept with mode 0600; never in the repo.  A secret
    added in a later version is generated into an existing file the first time it is
    asked for."""
    from cryptography.fernet import Fernet

    path = settings.paths.run_dir / "secrets.json"
    values = json.loads(path.read_text()) if path.exists() else {}
    wanted = {
        "postgres_password": lambda: secrets.token_urlsafe(18),
        "postgres_admin_password": lambda: secrets.token_urlsafe(18),
        "registry_db_password": lambda: secrets.token_urlsafe(18),
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


def metrics_token(settings: Settings) -> str:
    """The bearer token of the metrics endpoint (``/ecom/metrics``), generated once into its
    own file (mode 0600) so Prometheus can read it as a ``credentials_file``.

    A file named by ``[metrics] token_file`` (docker compose's secret) is the user's: read,
    never generated, since Prometheus reads the same file and a token made here would not
    be the one it sends; PlatformError when it is missing or empty."""
    path = settings.paths.metrics_token_file
    if settings.metrics.token_file:
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise PlatformError(
                f"cannot read the metrics token file {path} ([metrics] token_file): "
                f"{exc.strerror}. Generate it as the README says (docker compose: "
                "secrets/metrics_token)"
            ) from None
        if not token:
            raise PlatformError(f"the metrics token file {path} ([metrics] token_file) is empty")
        return token
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before the token is written: never readable by others, not even briefly.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()
