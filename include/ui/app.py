"""The FastAPI app the Airflow plugin mounts at ``/ecom``: health, quality and backfill pages.

Every route, the static files and the GX Data Docs included, sits behind Airflow's own
authentication: the user Airflow's login put in the ``_token`` cookie (or a bearer token,
for scripts).  A plain ``StaticFiles`` mount would serve the reports to anyone who can reach
the port; here an unauthenticated request gets 401 and a link to the login page.

Then the role (include/ui/access.py): the health page is the ``streaming`` DAG's, the
quality pages ``data_quality``'s, the backfill reports ``backfill``'s; the index and the
pages' CSS and scripts need a role that may use the UI.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from include.contract import parse_utc
from include.settings import get_settings
from include.ui import backfill_views, views
from include.ui.access import current_user, may_read
from include.ui.metrics_route import metrics
from include.ui.vendor import SERVED_VENDOR_PATHS, VENDOR_ROOT, localise

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
PREFIX = "/ecom"
STATIC_FILES = {"ecom.css", "ecom.js"}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
)


def _ago(moment: datetime | str | None, now: datetime | None = None) -> str:
    if isinstance(moment, str):
        moment = parse_utc(moment)
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}"
    return str(value)


templates.filters["ago"] = _ago
templates.filters["number"] = _number


NOT_FOUND = "Not found."
# Error bodies are plain text that browsers must not sniff into HTML or script.
PLAIN_TEXT = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
# Every route answers HEAD like GET (headers, no body): link checkers and proxies send it.
READ = ["GET", "HEAD"]


def _inside(root: Path, path: str) -> Path:
    """``root / path`` if that is a file inside ``root``; 404 otherwise: no ``..`` escapes,
    and a path the file system cannot even hold (a NUL byte, too long) is not found either."""
    if "\x00" in path:
        raise HTTPException(404, NOT_FOUND)
    try:
        base = root.resolve()
        target = (base / path).resolve()
        found = base in target.parents and target.is_file()
    except (OSError, ValueError, RuntimeError):
        found = False
    if not found:
        raise HTTPException(404, NOT_FOUND)
    return target


def create_app() -> FastAPI:
    """The pages' app: every route behind Airflow's login, errors as plain text, pages never
    cached."""
    app = FastAPI(
        title="E-commerce pipeline: health, data quality and backfills",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(current_user)],
    )

    # Who may see what: the DAG whose output a page shows (may_read).
    UI, STREAMING = may_read(None), may_read("streaming")
    QUALITY, BACKFILL = may_read("data_quality"), may_read("backfill")

    # Starlette's HTTPException: FastAPI's, and the router's own 404 and 405, alike.
    @app.exception_handler(StarletteHTTPException)
    async def _refused(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            page = templates.get_template("login_required.html").render(
                detail=exc.detail, next=str(request.url)
            )
            return HTMLResponse(page, status_code=401, headers=exc.headers)
        # Never echo the request back: a body made of the caller's path is an injection.
        detail = NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        return Response(
            content=detail,
            status_code=exc.status_code,
            headers={**(exc.headers or {}), **PLAIN_TEXT},
        )

    def render(name: str, **context: Any) -> HTMLResponse:
        page = templates.get_template(name).render(prefix=PREFIX, **context)
        # Pages are live views: never cache them, and let only Airflow frame them.
        return HTMLResponse(
            page,
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'self'; style-src 'self'; "
                "img-src 'self' data:; frame-ancestors 'self'",
            },
        )

    @app.api_route("/", methods=READ, response_class=HTMLResponse, dependencies=[UI])
    def index() -> HTMLResponse:
        return render("index.html")

    @app.api_route("/health", methods=READ, response_class=HTMLResponse, dependencies=[STREAMING])
    def health(hours: float = Query(3, gt=0, le=48)) -> HTMLResponse:
        view = views.health_view(get_settings(), hours=hours)
        return render("health.html", view=view, active="health")

    @app.api_route("/quality", methods=READ, response_class=HTMLResponse, dependencies=[QUALITY])
    def quality() -> HTMLResponse:
        view = views.quality_view(get_settings())
        return render("quality.html", view=view, active="quality")

    @app.api_route(
        "/quality/run", methods=READ, response_class=HTMLResponse, dependencies=[QUALITY]
    )
    def quality_run(
        dag_id: str | None = None, run_id: str | None = None, id: str | None = None
    ) -> HTMLResponse:
        settings = get_settings()
        if id:
            run = views.run_by_id(settings, id)
        elif dag_id and run_id:
            run = views.run_for_airflow(settings, dag_id, run_id)
        else:
            raise HTTPException(400, "give id=<quality run id>, or dag_id and run_id")
        return render("quality_run.html", run=run, dag_id=dag_id, run_id=run_id, active="quality")

    @app.api_route("/backfill", methods=READ, response_class=HTMLResponse, dependencies=[BACKFILL])
    def backfills() -> HTMLResponse:
        reports = backfill_views.recent_reports(get_settings())
        return render("backfills.html", reports=reports, active="backfill")

    @app.api_route(
        "/backfill/run", methods=READ, response_class=HTMLResponse, dependencies=[BACKFILL]
    )
    def backfill_run(dag_id: str | None = None, run_id: str | None = None) -> HTMLResponse:
        if not (dag_id and run_id):
            raise HTTPException(400, "give dag_id and run_id of a backfill DAG run")
        report = backfill_views.report_for_run(get_settings(), dag_id, run_id)
        return render(
            "backfill_report.html", report=report, dag_id=dag_id, run_id=run_id, active="backfill"
        )

    @app.api_route(
        "/backfill/{name}", methods=READ, response_class=HTMLResponse, dependencies=[BACKFILL]
    )
    def backfill_report(name: str) -> HTMLResponse:
        report = backfill_views.load_report(get_settings(), name)
        if report is None:
            raise HTTPException(404, NOT_FOUND)
        return render("backfill_report.html", report=report, active="backfill")

    @app.api_route("/quality/docs/{path:path}", methods=READ, dependencies=[QUALITY])
    def data_docs(path: str) -> Response:
        target = _inside(views.docs_root(get_settings()), path or "index.html")
        if target.suffix == ".html":
            # The report's own CSS/JS come from the plugin, not from CDNs.
            html = localise(target.read_text(encoding="utf-8"), PREFIX)
            return HTMLResponse(html, headers={"Cache-Control": "no-store"})
        media, _ = mimetypes.guess_type(target.name)
        return FileResponse(target, media_type=media or "application/octet-stream")

    @app.api_route("/vendor/{path:path}", methods=READ, dependencies=[UI])
    def vendor(path: str) -> FileResponse:
        # Only what the reports load, not the whole of node_modules.
        if not path.startswith(SERVED_VENDOR_PATHS):
            raise HTTPException(404, NOT_FOUND)
        target = _inside(VENDOR_ROOT, path)
        media, _ = mimetypes.guess_type(target.name)
        return FileResponse(
            target,
            media_type=media or "application/octet-stream",
            headers={"Cache-Control": "max-age=86400"},
        )

    @app.api_route("/static/{name}", methods=READ, dependencies=[UI])
    def static(name: str) -> FileResponse:
        if name not in STATIC_FILES:
            raise HTTPException(404, NOT_FOUND)
        media, _ = mimetypes.guess_type(name)
        return FileResponse(
            STATIC_DIR / name, media_type=media, headers={"Cache-Control": "max-age=300"}
        )

    # A plain Starlette route, deliberately outside the app's login dependency (which covers
    # FastAPI routes only): Prometheus cannot log in to Airflow, so the route checks a bearer
    # token of its own (include/ui/metrics_route.py).
    app.add_route("/metrics", metrics, methods=READ)
    return app
