"""The pure parts of the UI: whole windows, charts, and the offline Data Docs rewriting."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd

from include.ui.charts import line_chart, sparkline
from include.ui.vendor import CDN_FILES, VENDOR_ROOT, localise, remaining_cdn_addresses
from include.ui.views import revenue_totals, whole_windows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_whole_windows_count_each_purchase_once_although_windows_slide() -> None:
    # One 40.00 purchase at 12:00:45 lies in the windows starting 12:00:00 and 12:00:30.
    frame = pd.DataFrame(
        {
            "window_start": pd.to_datetime([T0, T0 + timedelta(seconds=30)], utc=True),
            "category": ["Books", "Books"],
            "total_revenue": [Decimal("40.00"), Decimal("40.00")],
        }
    )
    assert revenue_totals(whole_windows(frame, 60)) == {"Books": 40.0}


def test_charts_escape_names_and_draw_one_line_per_series() -> None:
    points = [(T0 + timedelta(minutes=i), float(i)) for i in range(5)]
    svg = line_chart({"<script>": points, "Books": points}, title="A & B")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "A &amp; B" in svg
    assert svg.count("<polyline") == 2
    assert "no data yet" in line_chart({}, title="empty")
    assert "<polyline" in sparkline([1, 2, 3]) and "<polyline" not in sparkline([1])


def test_every_cdn_file_of_the_data_docs_is_installed_and_rewritten() -> None:
    for address, local in CDN_FILES.items():
        assert (VENDOR_ROOT / local).exists(), f"{local} (for {address}) is not in .cache/web"
    page = "".join(
        f'<script src="{a}"></script>' if not a.endswith("/") else f'<link href="{a}css/x.css">'
        for a in CDN_FILES
    )
    rewritten = localise(page, "/ecom")
    assert remaining_cdn_addresses(rewritten) == []
    assert '"/ecom/vendor/jquery/dist/jquery.min.js"' in rewritten


def test_eleven_long_series_keep_distinct_colours_and_a_legend_inside_the_figure() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    names = [f"Category number {i} with a rather long name indeed" for i in range(11)]
    # Series i totals 11 - i: the three smallest (8, 9, 10) become "other (3)".
    series = {
        name: [(start, float(11 - i)), (start + timedelta(minutes=5), 0.0)]
        for i, name in enumerate(names)
    }
    svg = line_chart(series, title="Revenue", width=640)
    width = int(re.search(r'width="(\d+)"', svg).group(1))
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    strokes = re.findall(r'<polyline fill="none" stroke="(#[0-9A-Fa-f]{6})"', svg)
    assert len(strokes) == 9 and len(set(strokes)) == 9  # 8 largest + "other", all distinct
    legend = re.findall(r'<text x="([\d.]+)" y="(\d+)" class="legend">([^<]*)</text>', svg)
    assert [label for _, _, label in legend][-1] == "other (3)"
    assert names[0] not in [label for _, _, label in legend]  # cut, with "…"
    assert f"<title>{names[0]}</title>" in svg  # the full name in the tooltip
    for x, y, label in legend:
        # ~6.5 px per character of 11 px text: every entry ends inside the figure.
        assert float(x) + 6.5 * len(label) <= width and int(y) <= height, label
    assert len({y for _, y, _ in legend}) > 1  # the legend wrapped onto more rows
