"""Small inline SVG charts for the web UI, drawn on the server (no script, no external library).

Values are exact decimals (or their text); the geometry is computed in
decimals too and rounded to tenths of a pixel, so a chart never rounds money
through a binary float.  Labels carry the exact values.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

WIDTH = 720
HEIGHT = 220
PAD = 30
COLORS = {"revenue": "#2563eb", "cost": "#dc2626", "margin": "#16a34a"}


def _num(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def _px(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'))}"


def _frame(title: str, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f'<title>{escape(title)}</title><text x="{PAD}" y="16" class="chart-title">{escape(title)}</text>'
        f"{body}</svg>"
    )


def bars(points: Sequence[tuple[str, Any]], *, title: str) -> str:
    """Non-negative bars (calls per day, say)."""
    return signed_bars(points, title=title)


def signed_bars(points: Sequence[tuple[str, Any]], *, title: str) -> str:
    """Bars above and below a zero line (a correction's delta by day or destination)."""
    if not points:
        return _frame(title, f'<text x="{PAD}" y="{HEIGHT // 2}">nothing to show</text>')
    values = [_num(v) for _, v in points]
    top = max([*values, Decimal(0)])
    bottom = min([*values, Decimal(0)])
    span = (top - bottom) or Decimal(1)
    plot = Decimal(HEIGHT - 2 * PAD)
    zero = Decimal(PAD) + plot * top / span
    step = Decimal(WIDTH - 2 * PAD) / len(points)
    width = max(step * Decimal("0.8"), Decimal(1))
    parts = [f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{_px(zero)}" y2="{_px(zero)}" class="axis"/>']
    for index, ((label, _), value) in enumerate(zip(points, values, strict=True)):
        height = plot * abs(value) / span
        y = zero - height if value >= 0 else zero
        x = Decimal(PAD) + step * index
        kind = "up" if value >= 0 else "down"
        parts.append(
            f'<rect x="{_px(x)}" y="{_px(y)}" width="{_px(width)}" height="{_px(height)}" class="bar {kind}">'
            f"<title>{escape(str(label))}: {escape(str(value))}</title></rect>"
        )
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">{escape(str(points[0][0]))}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end" class="tick">'
        f"{escape(str(points[-1][0]))}</text>"
    )
    return _frame(title, "".join(parts))


def lines(labels: Sequence[str], series: dict[str, Sequence[Any]], *, title: str) -> str:
    """One polyline per series over the same labels (revenue, cost, margin by day)."""
    if not labels:
        return _frame(title, f'<text x="{PAD}" y="{HEIGHT // 2}">nothing to show</text>')
    numbers = {name: [_num(v) for v in values] for name, values in series.items()}
    every = [v for values in numbers.values() for v in values]
    top = max([*every, Decimal(0)])
    bottom = min([*every, Decimal(0)])
    span = (top - bottom) or Decimal(1)
    plot = Decimal(HEIGHT - 2 * PAD)
    step = Decimal(WIDTH - 2 * PAD) / max(len(labels) - 1, 1)
    parts = []
    for offset, (name, values) in enumerate(numbers.items()):
        points = " ".join(
            f"{_px(Decimal(PAD) + step * i)},{_px(Decimal(PAD) + plot * (top - v) / span)}"
            for i, v in enumerate(values)
        )
        color = COLORS.get(name, "#555")
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts.append(
            f'<text x="{WIDTH - PAD - 200 + 70 * offset}" y="16" fill="{color}" class="legend">'
            f"{escape(name)}</text>"
        )
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" class="tick">{escape(labels[0])}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end" class="tick">{escape(labels[-1])}</text>'
    )
    return _frame(title, "".join(parts))
