"""Small SVG charts drawn on the server: no JavaScript library, nothing from a CDN.

Each function returns an ``<svg>`` element as a string, ready to be inlined into a page
(Jinja's ``|safe``); every text in it is escaped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape

# Colour-blind-safe palette (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")

Point = tuple[datetime, float]


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}"


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 28) -> str:
    """A tiny line of the values, oldest left; empty when there are fewer than two."""
    points = [v for v in values if v is not None]
    if len(points) < 2:
        return f'<svg class="spark" width="{width}" height="{height}" role="img"></svg>'
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}"
        for i, v in enumerate(points)
    )
    label = escape(f"from {_fmt(points[0])} to {_fmt(points[-1])}, max {_fmt(high)}")
    return (
        f'<svg class="spark" width="{width}" height="{height}" role="img" aria-label="{label}">'
        f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="1.5" points="{coords}"/>'
        "</svg>"
    )


# A chart shows at most this many series, one colour each; the rest are summed into one
# grey "other" line (every chart with more series than this plots an additive measure).
MAX_SERIES = len(PALETTE)
OTHER_COLOUR = "#8c959f"
# The legend: 11 px text, about 6.5 px a character; names longer than this are cut (the
# full name stays in the tooltip), rows wrap inside the figure.
LEGEND_CHAR_PX = 6.5
LEGEND_MAX_CHARS = 28
LEGEND_ROW_PX = 14


def _top_series(drawn: dict[str, list[Point]], keep: int) -> list[tuple[str, list[Point], str]]:
    """(name, points, colour) of the `keep` largest series by total, plus the rest summed
    per moment into one "other (N)" series; every colour distinct."""
    ranked = sorted(drawn, key=lambda name: (-sum(v for _, v in drawn[name]), name))
    shown = [(name, drawn[name], PALETTE[i]) for i, name in enumerate(ranked[:keep])]
    rest = ranked[keep:]
    if rest:
        summed: dict[datetime, float] = {}
        for name in rest:
            for moment, value in drawn[name]:
                summed[moment] = summed.get(moment, 0.0) + value
        shown.append((f"other ({len(rest)})", sorted(summed.items()), OTHER_COLOUR))
    return shown


def _legend_entries(
    names: Sequence[str], left: int, right_edge: float
) -> tuple[list[tuple[str, float, int]], int]:
    """(shown label, x, row) per name, wrapping rows at `right_edge`; and the row count."""
    placed, x, row = [], float(left), 0
    for name in names:
        label = name if len(name) <= LEGEND_MAX_CHARS else name[: LEGEND_MAX_CHARS - 1] + "…"
        span = 14 + LEGEND_CHAR_PX * len(label) + 10
        if x > left and x + span > right_edge:
            x, row = float(left), row + 1
        placed.append((label, x, row))
        x += span
    return placed, row + 1 if names else 0


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    height: int = 220,
) -> str:
    """Lines over time, one per series (the largest MAX_SERIES, the rest summed into
    "other"), with a legend that wraps inside the figure, the time and value ranges."""
    left, right, top, bottom = 56, 12, 28, 36
    drawn = {name: sorted(points) for name, points in series.items() if points}
    lines = _top_series(drawn, MAX_SERIES)
    legend, rows = _legend_entries([name for name, _, _ in lines], left, width - right)
    # The plot keeps its size; the figure grows by the legend's extra rows.
    height += max(0, rows - 1) * LEGEND_ROW_PX
    plot_w, plot_h = width - left - right, height - top - bottom - max(0, rows - 1) * LEGEND_ROW_PX
    head = (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>'
    )
    if not drawn:
        return head + f'<text x="{left}" y="{top + plot_h / 2}">no data yet</text></svg>'
    times = [t for points in drawn.values() for t, _ in points]
    values = [v for _, points, _ in lines for _, v in points]
    t0, t1 = min(times), max(times)
    low, high = min(0.0, min(values)), max(values)
    t_span = (t1 - t0).total_seconds() or 1.0
    v_span = (high - low) or 1.0

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / t_span * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v - low) / v_span * plot_h

    axis_y = top + plot_h
    parts = [
        head,
        f'<line x1="{left}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{escape(_fmt(high) + unit)}</text>',
        f'<text x="{left - 4}" y="{axis_y}" text-anchor="end">{escape(_fmt(low) + unit)}</text>',
        f'<text x="{left}" y="{axis_y + 18}">{t0:%H:%M}</text>',
        f'<text x="{left + plot_w}" y="{axis_y + 18}" text-anchor="end">{t1:%H:%M} UTC</text>',
    ]
    for (name, points, colour), (label, legend_x, row) in zip(lines, legend, strict=True):
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        base = axis_y + 30 + row * LEGEND_ROW_PX
        parts.append(
            f'<g class="legend-entry"><title>{escape(name)}</title>'
            f'<rect x="{legend_x:.1f}" y="{base - 4}" width="10" height="4" fill="{colour}"/>'
            f'<text x="{legend_x + 14:.1f}" y="{base}" class="legend">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
