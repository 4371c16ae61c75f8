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


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    height: int = 220,
) -> str:
    """Lines over time, one per series, with a legend, the time range and the value range."""
    left, right, top, bottom = 56, 12, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    drawn = {name: sorted(points) for name, points in series.items() if points}
    head = (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>'
    )
    if not drawn:
        return head + f'<text x="{left}" y="{top + plot_h / 2}">no data yet</text></svg>'
    times = [t for points in drawn.values() for t, _ in points]
    values = [v for points in drawn.values() for _, v in points]
    t0, t1 = min(times), max(times)
    low, high = min(0.0, min(values)), max(values)
    t_span = (t1 - t0).total_seconds() or 1.0
    v_span = (high - low) or 1.0

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / t_span * plot_w

    def y(v: float) -> float:
        return top + plot_h - (v - low) / v_span * plot_h

    parts = [
        head,
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'class="axis"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{escape(_fmt(high) + unit)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">'
        f"{escape(_fmt(low) + unit)}</text>",
        f'<text x="{left}" y="{height - 18}">{t0:%H:%M}</text>',
        f'<text x="{left + plot_w}" y="{height - 18}" text-anchor="end">{t1:%H:%M} UTC</text>',
    ]
    legend_x = left
    for i, (name, points) in enumerate(drawn.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        parts.append(
            f'<rect x="{legend_x}" y="{height - 10}" width="10" height="4" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 6}" class="legend">{escape(name)}</text>'
        )
        legend_x += 24 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
