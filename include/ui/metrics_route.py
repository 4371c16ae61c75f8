"""``/ecom/metrics``: the pipeline's metrics for Prometheus, behind a bearer token.

Prometheus cannot log in to Airflow (a form, then a JWT cookie), so this one route is not
behind Airflow's login like the pages: it asks for ``Authorization: Bearer <token>``, the
token generated into ``<state>/run/metrics_token`` (mode 0600; `make up` prints where).
A person logged in to Airflow may read it too, if their role may read the pipeline's DAGs.
It shows figures only, never data rows.
"""

from __future__ import annotations

import hmac
import logging

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from include.metrics import CONTENT_TYPE, exposition, snapshot
from include.runtime.procs import PlatformError
from include.runtime.secrets import metrics_token
from include.settings import Settings, get_settings
from include.ui.access import check_reader, current_user

log = logging.getLogger(__name__)
REFUSED = {"WWW-Authenticate": 'Bearer realm="ecom metrics"'}


def authorised(request: Request, token: str) -> bool:
    """Whether the request carries ``token`` as its bearer token (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


async def metrics(request: Request) -> Response:
    """The metrics in Prometheus' text format, for the metrics token or an Airflow user whose
    role may read the ``streaming`` DAG (403 for another role); 401 for anyone else.  The
    files are read in a thread, so reading them never blocks the server."""
    settings = get_settings()
    try:
        token = metrics_token(settings)
    except PlatformError as exc:
        # A token file named by [metrics] token_file that is missing: no token opens the
        # route until it is there (said in the server's log, not to the caller).
        log.error("/ecom/metrics: %s", exc)
        token = ""
    if not authorised(request, token):
        try:
            user = await current_user(request)
        # RuntimeError: the app served outside Airflow's API server has no auth manager,
        # hence no logins, only the token.
        except (HTTPException, RuntimeError):
            raise HTTPException(
                401,
                "Send the metrics token: Authorization: Bearer <the contents of the token "
                "file: state/run/metrics_token, or [metrics] token_file> (Prometheus: "
                "authorization.credentials_file), or log in to Airflow.",
                headers=REFUSED,
            ) from None
        check_reader(user, "streaming")
    return await run_in_threadpool(_render, settings)


def _render(settings: Settings) -> Response:
    body = exposition(snapshot(settings))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
