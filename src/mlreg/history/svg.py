"""Charts as inline SVG, generated in Python: no JavaScript, no CDN, no network.

Each function returns one ``<svg>`` element (a string) that renders the same from ``file://`` and
from GitHub Pages. Every text is escaped; every point carries a ``<title>`` tooltip. Inputs are
plain numbers and labels; ``None`` values leave a gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "line_chart", "reliability_chart", "step_chart", "interval_chart",
           "nice_ticks"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")
_FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 0.001:
        return f"{v:.3g}"
    return f"{v:.4g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out = []
    x = start
    while x <= hi + step * 0.5 and len(out) < 50:
        out.append(round(x, 12))
        x += step
    return out


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} '
            f'{height}" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">'
            f'<title>{_e(title)}</title><rect width="{width}" height="{height}" fill="#fff"/>'
            + "".join(body) + "</svg>")


def _axes(x0: float, y0: float, x1: float, y1: float, ticks: list[float], ymap, ylabel: str
          ) -> list[str]:  # noqa: ANN001
    out = []
    for t in ticks:
        y = ymap(t)
        out.append(f'<line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(y)}" y2="{_n(y)}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{_n(x0 - 6)}" y="{_n(y + 4)}" text-anchor="end" {_FONT} '
                   f'fill="#555">{_e(_fmt(t))}</text>')
    out.append(f'<line x1="{_n(x0)}" x2="{_n(x0)}" y1="{_n(y0)}" y2="{_n(y1)}" stroke="#999"/>')
    out.append(f'<line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(y1)}" y2="{_n(y1)}" stroke="#999"/>')
    if ylabel:
        out.append(f'<text x="12" y="{_n((y0 + y1) / 2)}" {_FONT} fill="#333" '
                   f'transform="rotate(-90 12 {_n((y0 + y1) / 2)})" text-anchor="middle">'
                   f'{_e(ylabel)}</text>')
    return out


def _x_labels(labels: Sequence[str], xmap, y: float, max_labels: int = 14) -> list[str]:  # noqa: ANN001
    n = len(labels)
    step = max(1, math.ceil(n / max_labels))
    out = []
    for i in range(0, n, step):
        out.append(f'<text x="{_n(xmap(i))}" y="{_n(y + 14)}" text-anchor="middle" {_FONT} '
                   f'fill="#555">{_e(labels[i])}</text>')
    if n and (n - 1) % step:
        out.append(f'<text x="{_n(xmap(n - 1))}" y="{_n(y + 14)}" text-anchor="middle" {_FONT}'
                   f' fill="#555">{_e(labels[n - 1])}</text>')
    return out


def _legend(names: Sequence[str], x: float, y: float, colors: Sequence[str],
            dashed: Sequence[bool] | None = None) -> list[str]:
    out = []
    for i, name in enumerate(names[:10]):
        yy = y + i * 14
        dash = ' stroke-dasharray="4 3"' if dashed and dashed[i] else ""
        out.append(f'<line x1="{_n(x)}" x2="{_n(x + 16)}" y1="{_n(yy)}" y2="{_n(yy)}" '
                   f'stroke="{colors[i % len(colors)]}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{_n(x + 20)}" y="{_n(yy + 4)}" {_FONT} fill="#333">{_e(name)}'
                   '</text>')
    return out


def line_chart(title: str, x_labels: Sequence[str],
               series: Sequence[tuple[str, Sequence[float | None]]], *, y_label: str = "",
               width: int = 640, height: int = 240, highlight: Sequence[int] = ()) -> str:
    """Values over categorical x positions (versions in order); one polyline per series.
    ``highlight``: x positions to mark (deployed versions)."""
    legend_w = 150 if len(series) > 1 else 0
    x0, y0, x1, y1 = 56.0, 24.0, float(width - 16 - legend_w), float(height - 28)
    values = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    body = [f'<text x="{_n(x0)}" y="14" {_FONT} font-weight="600" fill="#222">{_e(title)}'
            '</text>']
    if not values or not x_labels:
        body.append(f'<text x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" '
                    f'{_FONT} fill="#777">no data</text>')
        return _frame(width, height, title, body)
    ticks = nice_ticks(min(values), max(values))
    lo, hi = ticks[0], ticks[-1]
    n = len(x_labels)

    def xmap(i: float) -> float:
        return x0 + (x1 - x0) * (0.5 if n == 1 else i / (n - 1))

    def ymap(v: float) -> float:
        return y1 - (y1 - y0) * ((v - lo) / (hi - lo) if hi > lo else 0.5)

    body += _axes(x0, y0, x1, y1, ticks, ymap, y_label)
    for i in highlight:
        if 0 <= i < n:
            body.append(f'<line x1="{_n(xmap(i))}" x2="{_n(xmap(i))}" y1="{_n(y0)}" '
                        f'y2="{_n(y1)}" stroke="#f0c36d" stroke-width="6" opacity="0.35"/>')
    body += _x_labels(x_labels, xmap, y1)
    dots = n <= 200
    for k, (name, vs) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        run: list[str] = []
        runs: list[list[str]] = []
        for i, v in enumerate(vs):
            if v is None or not math.isfinite(v):
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{_n(xmap(i))},{_n(ymap(v))}")
            if dots:
                body.append(f'<circle cx="{_n(xmap(i))}" cy="{_n(ymap(v))}" r="3" '
                            f'fill="{color}"><title>{_e(name)} {_e(x_labels[i])}: '
                            f'{_e(_fmt(v))}</title></circle>')
        if run:
            runs.append(run)
        for r in runs:
            if len(r) > 1:
                body.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" '
                            'stroke-width="1.6"/>')
    if legend_w:
        body += _legend([s[0] for s in series], x1 + 12, y0 + 6, PALETTE)
    return _frame(width, height, title, body)


def reliability_chart(title: str, curves: Sequence[tuple[str, Sequence[tuple[float, float, int]]]],
                      *, size: int = 260, dashed: Sequence[bool] = ()) -> str:
    """Reliability diagram: mean predicted score (x) against observed rate (y) per score bin;
    the diagonal is perfect calibration. ``curves``: (label, [(mean_score, mean_label, n)])."""
    legend_h = 14 * min(len(curves), 10)
    width, height = size, size + legend_h + 8
    x0, y0, x1, y1 = 40.0, 22.0, float(size - 12), float(size - 30)
    body = [f'<text x="{_n(x0)}" y="14" {_FONT} font-weight="600" fill="#222">{_e(title)}'
            '</text>']
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]

    def xmap(v: float) -> float:
        return x0 + (x1 - x0) * v

    def ymap(v: float) -> float:
        return y1 - (y1 - y0) * v

    body += _axes(x0, y0, x1, y1, ticks, ymap, "observed")
    for t in ticks:
        body.append(f'<text x="{_n(xmap(t))}" y="{_n(y1 + 14)}" text-anchor="middle" {_FONT} '
                    f'fill="#555">{_e(_fmt(t))}</text>')
    body.append(f'<line x1="{_n(xmap(0))}" y1="{_n(ymap(0))}" x2="{_n(xmap(1))}" '
                f'y2="{_n(ymap(1))}" stroke="#bbb" stroke-dasharray="3 3"/>')
    for k, (name, pts) in enumerate(curves):
        color = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="4 3"' if k < len(dashed) and dashed[k] else ""
        ok = [(s, y, n) for s, y, n in pts if n and math.isfinite(s) and math.isfinite(y)]
        if len(ok) > 1:
            body.append(f'<polyline points="{" ".join(f"{_n(xmap(s))},{_n(ymap(y))}" for s, y, _ in ok)}"'
                        f' fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
        total = sum(n for _, _, n in ok) or 1
        for s, y, n in ok:
            r = 2 + 4 * math.sqrt(n / total)
            body.append(f'<circle cx="{_n(xmap(s))}" cy="{_n(ymap(y))}" r="{_n(r)}" '
                        f'fill="{color}" opacity="0.8"><title>{_e(name)}: mean score '
                        f'{_e(_fmt(s))}, observed {_e(_fmt(y))}, n={n}</title></circle>')
    body += _legend([c[0] for c in curves], x0, size + 2, PALETTE,
                    [k < len(dashed) and dashed[k] for k in range(len(curves))])
    return _frame(width, height, title, body)


def step_chart(title: str, points: Sequence[dict], versions: Sequence[str], *,
               width: int = 720, height: int | None = None) -> str:
    """A service's deployment timeline: ``points`` in commit order, each ``{"label", "stable",
    "canary", "percent", "kind", "tooltip"}``; ``versions`` the y categories in order. The
    stable version is a step line, a canary a dashed segment, a rollback a red cross."""
    rows = max(1, len(versions))
    height = height or min(420, 70 + rows * 22)
    x0, y0, x1, y1 = 70.0, 24.0, float(width - 16), float(height - 30)
    body = [f'<text x="{_n(x0)}" y="14" {_FONT} font-weight="600" fill="#222">{_e(title)}'
            '</text>']
    if not points:
        body.append(f'<text x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" '
                    f'{_FONT} fill="#777">no deployments</text>')
        return _frame(width, height, title, body)
    idx = {v: i for i, v in enumerate(versions)}
    n = len(points)

    def xmap(i: float) -> float:
        return x0 + (x1 - x0) * ((i + 0.5) / n)

    def ymap(v: str) -> float:
        return y1 - (y1 - y0) * ((idx.get(v, 0) + 0.5) / rows)

    step = max(1, math.ceil(rows / 16))
    for v, i in idx.items():
        if i % step == 0 or i == rows - 1:
            y = ymap(v)
            body.append(f'<line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(y)}" y2="{_n(y)}" '
                        'stroke="#eee"/>')
            body.append(f'<text x="{_n(x0 - 6)}" y="{_n(y + 4)}" text-anchor="end" {_FONT} '
                        f'fill="#555">{_e(v)}</text>')
    body.append(f'<line x1="{_n(x0)}" x2="{_n(x1)}" y1="{_n(y1)}" y2="{_n(y1)}" stroke="#999"/>')
    body += _x_labels([p["label"] for p in points], xmap, y1, max_labels=8)
    path = []
    for i, p in enumerate(points):
        if p.get("stable") is None:
            continue
        x_left = x0 + (x1 - x0) * (i / n)
        x_right = x0 + (x1 - x0) * ((i + 1) / n)
        y = ymap(p["stable"])
        path.append(f"M{_n(x_left)},{_n(y)}H{_n(x_right)}")
        if i + 1 < n and points[i + 1].get("stable") is not None:
            path.append(f"M{_n(x_right)},{_n(y)}V{_n(ymap(points[i + 1]['stable']))}")
        if p.get("canary"):
            yc = ymap(p["canary"])
            body.append(f'<line x1="{_n(x_left)}" x2="{_n(x_right)}" y1="{_n(yc)}" '
                        f'y2="{_n(yc)}" stroke="{PALETTE[4]}" stroke-width="3" '
                        f'stroke-dasharray="5 3"><title>canary {_e(p["canary"])} at '
                        f'{_e(_fmt(p.get("percent") or 0))}%</title></line>')
    body.append(f'<path d="{"".join(path)}" fill="none" stroke="{PALETTE[0]}" '
                'stroke-width="2.5"/>')
    for i, p in enumerate(points):
        if p.get("stable") is None:
            continue
        x, y = xmap(i), ymap(p["canary"] if p.get("kind") == "canary" and p.get("canary")
                             else p["stable"])
        color = PALETTE[1] if p.get("kind") == "rollback" else PALETTE[0]
        if p.get("kind") == "rollback":
            body.append(f'<path d="M{_n(x - 5)},{_n(y - 5)}L{_n(x + 5)},{_n(y + 5)}M{_n(x - 5)},'
                        f'{_n(y + 5)}L{_n(x + 5)},{_n(y - 5)}" stroke="{color}" '
                        f'stroke-width="2.5"><title>{_e(p.get("tooltip", ""))}</title></path>')
        else:
            body.append(f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{color}"><title>'
                        f'{_e(p.get("tooltip", ""))}</title></circle>')
    return _frame(width, height, title, body)


def interval_chart(title: str, items: Sequence[tuple[str, float, float | None, float | None]],
                   *, width: int = 560, as_percent: bool = True, zero: bool = True) -> str:
    """Horizontal bars with interval whiskers (online lifts per surface and experiment):
    ``items`` are (label, value, low, high)."""
    rows = max(1, len(items))
    height = 40 + rows * 24
    label_w = 190.0
    x0, x1 = label_w, float(width - 20)
    body = [f'<text x="8" y="14" {_FONT} font-weight="600" fill="#222">{_e(title)}</text>']
    if not items:
        body.append(f'<text x="{_n(width / 2)}" y="{_n(height / 2)}" text-anchor="middle" '
                    f'{_FONT} fill="#777">no results</text>')
        return _frame(width, height, title, body)
    vals = [v for _, v, lo, hi in items for v in (v, lo, hi) if v is not None]
    lo_v, hi_v = min(vals + ([0.0] if zero else [])), max(vals + ([0.0] if zero else []))
    ticks = nice_ticks(lo_v, hi_v, 4)
    lo_v, hi_v = ticks[0], ticks[-1]

    def xmap(v: float) -> float:
        return x0 + (x1 - x0) * ((v - lo_v) / (hi_v - lo_v) if hi_v > lo_v else 0.5)

    def lab(v: float) -> str:
        return f"{v * 100:+.2g}%" if as_percent else _fmt(v)

    y_axis = height - 18
    for t in ticks:
        body.append(f'<line x1="{_n(xmap(t))}" x2="{_n(xmap(t))}" y1="22" y2="{_n(y_axis)}" '
                    'stroke="#eee"/>')
        body.append(f'<text x="{_n(xmap(t))}" y="{_n(y_axis + 12)}" text-anchor="middle" '
                    f'{_FONT} fill="#555">{_e(lab(t))}</text>')
    if zero and lo_v <= 0 <= hi_v:
        body.append(f'<line x1="{_n(xmap(0))}" x2="{_n(xmap(0))}" y1="22" y2="{_n(y_axis)}" '
                    'stroke="#888"/>')
    for i, (label, v, lo, hi) in enumerate(items):
        y = 30 + i * 24
        color = PALETTE[2] if v >= 0 else PALETTE[1]
        xa, xb = sorted((xmap(0 if zero else lo_v), xmap(v)))
        body.append(f'<text x="{_n(label_w - 8)}" y="{_n(y + 12)}" text-anchor="end" {_FONT} '
                    f'fill="#333">{_e(label)}</text>')
        tip = f"{label}: {lab(v)}" + (f" [{lab(lo)}, {lab(hi)}]" if lo is not None
                                       and hi is not None else "")
        body.append(f'<rect x="{_n(xa)}" y="{_n(y + 3)}" width="{_n(max(1.0, xb - xa))}" '
                    f'height="12" fill="{color}" opacity="0.75"><title>{_e(tip)}</title></rect>')
        if lo is not None and hi is not None:
            body.append(f'<path d="M{_n(xmap(lo))},{_n(y + 9)}H{_n(xmap(hi))}M{_n(xmap(lo))},'
                        f'{_n(y + 4)}V{_n(y + 14)}M{_n(xmap(hi))},{_n(y + 4)}V{_n(y + 14)}" '
                        'stroke="#222" stroke-width="1.2"/>')
    return _frame(width, height, title, body)
