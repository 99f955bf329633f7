"""Small server-rendered SVG line charts (no JavaScript, no build step).

Pure functions: data in, markup out, so they are unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4d7c0f", "#be185d")


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi == lo:
        return [lo]
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, x_label: str = "",
               width: int = 640, height: int = 260, chart_id: str | None = None, integer_x: bool = False) -> str:
    """An SVG with one polyline (and dots) per series; x and y scaled to the data.

    Args:
        series: label -> [(x, y), ...] (unsorted is fine; non-finite points are dropped)
        integer_x: label the x axis with the integer x values (adapter versions)
    Returns:
        the <svg> markup ("" when there is no point at all)
    """
    clean = {k: sorted((float(x), float(y)) for x, y in pts if _finite(x) and _finite(y)) for k, pts in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return ""
    xs = [x for pts in clean.values() for x, _ in pts]
    ys = [y for pts in clean.values() for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - (abs(y0) * 0.1 or 1), y1 + (abs(y1) * 0.1 or 1)
    left, right, top, bottom = 56, 16 + (110 if len(clean) > 1 else 0), 28, 36
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (pw / 2 if x1 == x0 else (x - x0) / (x1 - x0) * pw)

    def sy(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}"' + (f' id="{escape(chart_id)}"' if chart_id else "") + ">",
           f"<title>{escape(title)}</title>",
           f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    for t in _ticks(y0, y1):
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>')
    xt = sorted(set(xs)) if integer_x and len(set(xs)) <= 20 else _ticks(x0, x1)
    for t in xt:
        x = sx(t)
        label = str(int(t)) if integer_x else _fmt(t)
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" class="tick">{escape(label)}</text>')
    if x_label:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 4}" text-anchor="middle" class="axis">'
                   f"{escape(x_label)}</text>")
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>')
    for i, (label, pts) in enumerate(sorted(clean.items())):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2" '
                   f'class="series" data-series="{escape(label)}"/>')
        if len(pts) <= 50:
            for x, y in pts:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}">'
                           f"<title>{escape(label)} @ {_fmt(x)}: {_fmt(y)}</title></circle>")
        if len(clean) > 1:
            ly = top + 14 * i + 8
            out.append(f'<rect x="{width - right + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
                       f'<text x="{width - right + 24}" y="{ly + 1}" class="legend">{escape(label[:18])}</text>')
    out.append("</svg>")
    return "".join(out)


def _finite(v) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def metrics_by_version(versions) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(version, current value)] across an adapter's versions."""
    out: dict[str, list[tuple[float, float]]] = {}
    for v in versions:
        for m, val in (v.metrics or {}).items():
            out.setdefault(m, []).append((v.version, val))
    return out


def loss_points(training: dict | None) -> list[tuple[float, float]]:
    """[(step, loss)] from AdapterVersion.training["loss_curve"] (dicts or [step, loss] pairs)."""
    curve = (training or {}).get("loss_curve") or []
    pts = []
    for p in curve:
        if isinstance(p, dict):
            step, loss = p.get("step"), p.get("loss")
        elif isinstance(p, (list, tuple)) and len(p) >= 2:
            step, loss = p[0], p[1]
        else:
            continue
        if step is not None and loss is not None and _finite(step) and _finite(loss):
            pts.append((float(step), float(loss)))
    return pts
