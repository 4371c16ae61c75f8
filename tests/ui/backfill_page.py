"""Reading the backfill reconciliation page (include/ui/templates/backfill_report.html) the
way a user reads it: per analytic, the text of each of its cells."""

from __future__ import annotations

import re
from collections import Counter
from html import unescape
from typing import Any

import pandas as pd


def analytic_cells(html: str) -> dict[str, dict[str, str]]:
    """Per analytic row of the page's table, its cells' text by their last class (verdict,
    rows, compared, only-in-backfill, only-in-stream, duplicate-keys, late, explanation)."""
    found = {}
    for analytic, row in re.findall(r'<tr data-analytic="([^"]+)">(.*?)</tr>', html, re.S):
        found[analytic] = {
            cls.split()[-1]: unescape(re.sub(r"\s+", " ", text).strip())
            for cls, text in re.findall(r'<td class="([^"]+)">(.*?)</td>', row, re.S)
        }
    return found


def differing_rows(html: str, analytic: str, side: str) -> list[dict[str, str]]:
    """The rows the page lists for `analytic` on `side` (only-in-backfill, only-in-stream)."""
    section = html.split(f'data-differences="{analytic}"', 1)
    if len(section) < 2:
        return []
    table = re.search(
        rf'<table class="rows {side}">(.*?)</table>', section[1].split("</section>")[0], re.S
    )
    if not table:
        return []
    header = [unescape(h) for h in re.findall(r"<th>(.*?)</th>", table.group(1), re.S)]
    body = table.group(1).split("<tbody>", 1)[1]
    return [
        dict(
            zip(
                header, (unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)), strict=True
            )
        )
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def as_rows(frame: pd.DataFrame) -> Counter:
    """A frame as a multiset of hashable rows."""
    return Counter(
        tuple(tuple(v) if isinstance(v, list) else v for v in row)
        for row in frame.itertuples(index=False)
    )


def logged_in_app() -> Any:
    """The plugin's app as a logged-in user with a role that reads every DAG sees it, without
    Airflow's API server (tests/ui/ checks the login and the roles themselves)."""
    from include.ui.access import current_user, role_check
    from include.ui.app import create_app

    app = create_app()
    app.dependency_overrides[current_user] = lambda: "admin"
    app.dependency_overrides[role_check] = lambda: lambda user, dag_id: None
    return app


def reconciliation_page(name: str) -> str:
    """The plugin's page of the reconciliation report `name`, as a logged-in user sees it."""
    from fastapi.testclient import TestClient

    page = TestClient(logged_in_app()).get(f"/backfill/{name}")
    assert page.status_code == 200, page.text
    return page.text
