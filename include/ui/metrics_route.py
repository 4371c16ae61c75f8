"""``/ecom/metrics``: the pipeline's metrics for Prometheus, behind a bearer token.

Prometheus cannot log in to Airflow (a form, then a JWT cookie), so this one route is not
behind Airflow's login like the pages: it asks for ``Authorization: Bearer <token>``, the
token generated into ``<state>/run/metrics_token`` (mode 0600; `make up` prints where).
It shows figures only, never data rows.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from include.metrics import CONTENT_TYPE, exposition, snapshot
from include.runtime.secrets import metrics_token
from include.settings import get_settings

REFUSED = {"WWW-Authenticate": 'Bearer realm="ecom metrics"'}


def authorised(request: Request, token: str) -> bool:
    """Whether the request carries ``token`` as its bearer token (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    )


def metrics(request: Request) -> Response:
    """The metrics in Prometheus' text format; 401 without the right bearer token (a plain
    function: Starlette runs it in a thread, so reading files never blocks the server)."""
    settings = get_settings()
    if not authorised(request, metrics_token(settings)):
        raise HTTPException(
            401,
            "Send the metrics token: Authorization: Bearer <the contents of "
            "state/run/metrics_token> (Prometheus: authorization.credentials_file).",
            headers=REFUSED,
        )
    body = exposition(snapshot(settings))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
