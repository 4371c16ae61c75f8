"""Who may see the ``/ecom`` pages: Airflow's login (401 without it), then the role (403).

Each page shows what one DAG made, and only a user whose role may read that DAG sees it, as
Airflow decides for its own DAG pages -- the auth manager's own decision, so per-DAG access
an admin grants in Airflow holds here too.  The viewer, operator and admin roles all read
every DAG (include/runtime/users.py); a user with a role that grants nothing gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request


async def current_user(request: Request) -> Any:
    """The logged-in Airflow user (the login's ``_token`` cookie, or a bearer token for
    scripts), or 401 with the way to the login page."""
    from airflow.api_fastapi.core_api.security import get_user

    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    credentials = None
    if scheme.lower() == "bearer" and token:
        from fastapi.security import HTTPAuthorizationCredentials

        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    try:
        return await get_user(request, None, credentials)
    except HTTPException as exc:
        raise HTTPException(
            status_code=401,
            detail=f"Log in to Airflow first ({exc.detail}).",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc


def check_reader(user: Any, dag_id: str | None) -> None:
    """403 unless ``user``'s role may read the DAG ``dag_id`` (None: may use Airflow's UI)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagDetails

    manager = get_auth_manager()
    if dag_id is None:
        allowed = manager.is_authorized_view(access_view=AccessView.WEBSITE, user=user)
        what = "use Airflow's UI"
    else:
        allowed = manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user)
        what = f"read the DAG {dag_id}"
    if not allowed:
        raise HTTPException(
            403,
            f"Your role may not {what}, which this page shows; an admin can give you the "
            'viewer role (make user ARGS="add <you> --role viewer").',
        )


def role_check() -> Callable[[Any, str | None], None]:
    """The role check the pages use, as a dependency of its own (:func:`check_reader`): the
    pages' unit tests, which run without Airflow's auth manager, override it."""
    return check_reader


def may_read(dag_id: str | None) -> Any:
    """A route dependency: the login, then the role check for ``dag_id``."""

    async def check(
        user: Annotated[Any, Depends(current_user)],
        allowed: Annotated[Callable[[Any, str | None], None], Depends(role_check)],
    ) -> None:
        allowed(user, dag_id)

    return Depends(check)
