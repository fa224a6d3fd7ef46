"""Tiny inline-SVG charts for the self-contained report (no plotting library, no external URLs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
STATE_COLORS = {
    "Succeeded": "#2ca02c",
    "Failed": "#d62728",
    "Stopped": "#ff7f0e",
    "Skipped": "#9e9e9e",
    "Running": "#1f77b4",
    "Pending": "#cfcfcf",
}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str
    dashed: bool = False


@dataclass(frozen=True)
class Band:
    xs: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    color: str


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.1e}"
    return f"{v:.3g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _range(values: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


class _Frame:
    """Maps data coordinates into a plot area with margins for axes."""

    def __init__(
        self, width: int, height: int, xr: tuple[float, float], yr: tuple[float, float], left: int = 64
    ):
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = left, 16, 28, 40
        self.xr, self.yr = xr, yr

    def x(self, v: float) -> float:
        lo, hi = self.xr
        return self.left + (v - lo) / ((hi - lo) or 1) * (self.w - self.left - self.right)

    def y(self, v: float) -> float:
        lo, hi = self.yr
        v = min(max(v, lo), hi)  # outliers (a diverging trial) are pinned to the edge, not off-canvas
        return self.h - self.bottom - (v - lo) / ((hi - lo) or 1) * (self.h - self.top - self.bottom)

    def axes(self, xlabel: str, ylabel: str, xticks: bool = True) -> list[str]:
        out = []
        x0, x1 = self.left, self.w - self.right
        y0, y1 = self.h - self.bottom, self.top
        for t in nice_ticks(*self.yr):
            y = self.y(t)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>')
        if xticks:
            for t in nice_ticks(*self.xr):
                x = self.x(t)
                out.append(
                    f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="middle" class="tick">{_fmt(t)}</text>'
                )
        out.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>')
        out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>')
        out.append(
            f'<text x="{(x0 + x1) / 2:.1f}" y="{self.h - 6}" text-anchor="middle">{escape(xlabel)}</text>'
        )
        out.append(
            f'<text x="12" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {(y0 + y1) / 2:.1f})">{escape(ylabel)}</text>'
        )
        return out


def _xgrid(f: _Frame, xlabel: str) -> list[str]:
    """Vertical grid lines, x tick labels and the x label (charts whose values run along x)."""
    out = []
    bottom = f.h - f.bottom
    for t in nice_ticks(*f.xr):
        x = f.x(t)
        out.append(f'<line x1="{x:.1f}" y1="{f.top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">{_fmt(t)}</text>')
    middle = (f.left + f.w) / 2
    out.append(f'<text x="{middle:.0f}" y="{f.h - 6}" text-anchor="middle">{escape(xlabel)}</text>')
    return out


def _svg(kind: str, key: str, width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg class="plot" data-plot="{escape(kind)}" data-key="{escape(key)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" class="title">{escape(title)}</text>'
        + "".join(body)
        + "</svg>"
    )


def line_chart(
    kind: str,
    key: str,
    title: str,
    series: Sequence[Series],
    *,
    bands: Sequence[Band] = (),
    xlabel: str = "epoch",
    ylabel: str = "",
    y_values: Sequence[float] | None = None,
    width: int = 560,
    height: int = 300,
) -> str:
    xs = [x for s in series for x in s.xs] or [0.0, 1.0]
    ys = list(y_values) if y_values is not None else [y for s in series for y in s.ys]
    ys += [v for b in bands for v in (*b.lo, *b.hi)]
    f = _Frame(width, height, (min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1), _range(ys))
    body = f.axes(xlabel, ylabel)
    for b in bands:
        edge = [f"{f.x(x):.1f},{f.y(v):.1f}" for x, v in zip(b.xs, b.hi, strict=True)]
        edge += [f"{f.x(x):.1f},{f.y(v):.1f}" for x, v in reversed(list(zip(b.xs, b.lo, strict=True)))]
        body.append(
            f'<polygon points="{" ".join(edge)}" fill="{b.color}" fill-opacity="0.18" stroke="none"/>'
        )
    for s in series:
        pts = [(x, y) for x, y in zip(s.xs, s.ys, strict=True) if math.isfinite(y)]
        if not pts:
            continue
        path = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in pts)
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        for x, y in pts if len(pts) <= 30 else pts[-1:]:
            body.append(f'<circle cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="2.2" fill="{s.color}"/>')
    return _svg(kind, key, width, height, title, body)


def strip_chart(
    kind: str,
    key: str,
    title: str,
    groups: Sequence[tuple[str, Sequence[float]]],
    *,
    xlabel: str = "",
    width: int = 560,
) -> str:
    """One row per group: a dot per value, the mean as a bar, ± one standard deviation as a whisker."""
    height = 60 + 34 * max(len(groups), 1)
    values = [v for _, vs in groups for v in vs]
    f = _Frame(width, height, _range(values), (0, max(len(groups), 1)), left=120)
    body = _xgrid(f, xlabel)
    for i, (name, vs) in enumerate(groups):
        cy = f.top + 34 * i + 17
        body.append(
            f'<text x="{f.left - 6}" y="{cy + 4}" text-anchor="end">{escape(name)} (n={len(vs)})</text>'
        )
        for j, v in enumerate(vs):
            jitter = ((j * 7) % 11 - 5) * 1.2
            body.append(
                f'<circle cx="{f.x(v):.1f}" cy="{cy + jitter:.1f}" r="3" fill="{color(i)}"'
                f' fill-opacity="0.7"><title>{_fmt(v)}</title></circle>'
            )
        if vs:
            mean = sum(vs) / len(vs)
            std = math.sqrt(sum((v - mean) ** 2 for v in vs) / (len(vs) - 1)) if len(vs) > 1 else 0.0
            x0, x1 = f.x(mean - std), f.x(mean + std)
            body.append(f'<line x1="{x0:.1f}" y1="{cy}" x2="{x1:.1f}" y2="{cy}" stroke="#333"/>')
            xm = f.x(mean)
            body.append(
                f'<line x1="{xm:.1f}" y1="{cy - 9}" x2="{xm:.1f}" y2="{cy + 9}"'
                ' stroke="#000" stroke-width="2"/>'
            )
    return _svg(kind, key, width, height, title, body)


def bar_chart(
    kind: str,
    key: str,
    title: str,
    bars: Sequence[tuple[str, float, str]],
    *,
    xlabel: str = "",
    width: int = 560,
) -> str:
    """Horizontal bars: (label, value, color)."""
    height = 60 + 24 * max(len(bars), 1)
    values = [v for _, v, _ in bars] + [0.0]
    lo, hi = min(values), max(values)
    f = _Frame(width, height, (lo, hi if hi > lo else lo + 1), (0, 1), left=220)
    body = _xgrid(f, xlabel)
    for i, (label, value, fill) in enumerate(bars):
        y = f.top + 24 * i + 4
        x0, x1 = sorted((f.x(0.0), f.x(value)))
        body.append(f'<text x="{f.left - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        body.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="18" fill="{fill}">'
            f"<title>{escape(label)}: {_fmt(value)}</title></rect>"
        )
        body.append(f'<text x="{x1 + 4:.1f}" y="{y + 13}" class="tick">{_fmt(value)}</text>')
    return _svg(kind, key, width, height, title, body)


def timeline(
    kind: str, key: str, title: str, rows: Sequence[tuple[str, float, float, str, str]], *, width: int = 880
) -> str:
    """A Gantt chart: (label, start_s, end_s, color, tooltip) per row, seconds since the campaign began."""
    height = 60 + 12 * max(len(rows), 1)
    end = max([r[2] for r in rows] + [1.0])
    f = _Frame(width, height, (0.0, end), (0, 1), left=180)
    body = _xgrid(f, "seconds since start")
    for i, (label, start, stop, fill, tip) in enumerate(rows):
        y = f.top + 12 * i
        x0, x1 = f.x(start), f.x(max(stop, start))
        body.append(
            f'<text x="{f.left - 6}" y="{y + 9}" text-anchor="end" class="tick">{escape(label)}</text>'
        )
        body.append(
            f'<rect x="{x0:.1f}" y="{y + 1}" width="{max(x1 - x0, 1.5):.1f}" height="9" fill="{fill}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    return _svg(kind, key, width, height, title, body)
