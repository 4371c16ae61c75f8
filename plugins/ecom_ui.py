"""Airflow plugin: the pipeline's health, data-quality and backfill pages inside the Airflow UI.

* a FastAPI app at ``/ecom`` (include/ui/app.py), every page behind Airflow's login;
* three entries in the Airflow nav, each opening its page inside the UI;
* the "Quality report" button on the data_quality task and the "Reconciliation" button on
  the backfill task (include/operators.py).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.operators import QualityReportLink, ReconciliationLink
from include.ui.app import PREFIX, create_app


class EcommerceUiPlugin(AirflowPlugin):
    """Mounts the pages' app at ``/ecom``, adds their three Browse entries and the Quality
    report and Reconciliation buttons."""

    name = "ecommerce_ui"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": PREFIX, "name": "E-commerce pipeline pages"}
    ]
    external_views = [
        {
            "name": "Pipeline health",
            "href": f"{PREFIX}/health",
            "url_route": "pipeline-health",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Data quality",
            "href": f"{PREFIX}/quality",
            "url_route": "data-quality",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Backfills",
            "href": f"{PREFIX}/backfill",
            "url_route": "backfills",
            "destination": "nav",
            "category": "browse",
        },
    ]
    operator_extra_links = [QualityReportLink(), ReconciliationLink()]
