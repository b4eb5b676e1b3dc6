"""Sweep Pareto plots: quality against one cost, one panel per dataset. The PNG (Markdown, W&B) numbers
the front, the best and the tied points and lists their configurations under the panel, so no label
runs over another or out of the frame; the HTML version (plotly) shows every configuration on hover."""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from embedlab.viz.plots import new_figure, save_figure

MAX_KEYED = 20  # numbered points per panel: the best, then the front, then the tied, in that order
# Where a number may sit relative to its point (points), tried in turn until one overlaps nothing placed.
_OFFSETS = ((4, 4), (4, -11), (-11, 4), (-11, -11), (6, -3), (-14, -3), (-3, 7), (-3, -14))


class ParetoPoint(NamedTuple):
    cost: float
    quality: float
    low: float  # error bar: the 95% interval (or quality -/+ the seed std); NaN when unknown
    high: float
    on_front: bool
    label: str  # short: only the axes that vary across the sweep
    tied: bool = False  # statistically tied with the panel's best: drawn with a black edge
    best: bool = False  # the panel's best quality: a star
    detail: str = ""  # hover text of the interactive plot: the full configuration, its interval


def log_scale(pts: Sequence[ParetoPoint]) -> bool:
    """A cost spanning more than 20x reads better on a log axis."""
    xs = [p.cost for p in pts]
    return min(xs) > 0 and max(xs) / min(xs) > 20


def keyed_points(pts: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """The points that get a number and a line in the key, left to right: the best, the front, then
    the tied ones, at most ``MAX_KEYED``."""
    chosen = [p for p in pts if p.best]
    chosen += [p for p in pts if p.on_front and not p.best]
    chosen += [p for p in pts if p.tied and not (p.on_front or p.best)]
    return sorted(chosen[:MAX_KEYED], key=lambda p: (p.cost, -p.quality))


def _bars(p: ParetoPoint) -> tuple[float, float]:
    """(below, above) error bar lengths, 0 where the interval is unknown (or does not hold the point)."""
    below = p.quality - p.low if math.isfinite(p.low) else 0.0
    return max(0.0, below), max(0.0, p.high - p.quality) if math.isfinite(p.high) else 0.0


def _draw_panel(ax: Any, pts: Sequence[ParetoPoint], larger_is_better: bool) -> None:
    """Dominated points grey, the front red and joined as a staircase (what the cost buys), tied ones
    ringed, the best starred."""
    front = sorted((p for p in pts if p.on_front), key=lambda p: p.cost)
    dominated = [p for p in pts if not p.on_front]
    for sel, color, name, z in ((dominated, "0.65", "dominated", 2), (front, "tab:red", "Pareto front", 3)):
        if sel:
            yerr = list(zip(*(_bars(p) for p in sel), strict=True))
            kw = {"fmt": "o", "color": color, "ms": 5, "capsize": 2, "elinewidth": 0.8, "zorder": z}
            ax.errorbar([p.cost for p in sel], [p.quality for p in sel], yerr=yerr, label=name, **kw)
    if len(front) > 1:
        xs, ys = [p.cost for p in front], [p.quality for p in front]
        ax.step(xs, ys, where="pre" if larger_is_better else "post", color="tab:red", lw=1.2, alpha=0.7)
    ring = {"s": 110, "facecolors": "none", "edgecolors": "black", "label": "tied with best"}
    star = {"s": 160, "marker": "*", "color": "gold", "edgecolors": "black", "label": "best"}
    for sel, kw in (([p for p in pts if p.tied], ring), ([p for p in pts if p.best], star)):
        if sel:
            ax.scatter([p.cost for p in sel], [p.quality for p in sel], zorder=4, **kw)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _number_points(ax: Any, keyed: Sequence[ParetoPoint]) -> None:
    """Each keyed point's number at the first offset whose box overlaps no number already placed
    (boxes in points, from the drawn layout)."""
    to_pt = 72.0 / ax.figure.dpi
    placed: list[tuple[float, float, float, float]] = []
    for i, p in enumerate(keyed, 1):
        x, y = (v * to_pt for v in ax.transData.transform((p.cost, p.quality)))
        w = 4.6 * len(str(i)) + 1
        boxes = [(x + dx, y + dy, x + dx + w, y + dy + 8.0) for dx, dy in _OFFSETS]
        clashes = [sum(_overlap(b, q) for q in placed) for b in boxes]
        k = clashes.index(min(clashes))  # the first free offset, else the least crowded
        placed.append(boxes[k])
        kw = {"textcoords": "offset points", "fontsize": 7, "fontweight": "bold", "annotation_clip": True}
        number = ax.annotate(str(i), (p.cost, p.quality), xytext=_OFFSETS[k], va="bottom", ha="left", **kw)
        number.set_in_layout(False)  # inside the axes: the layout was fixed before they were placed


def plot_pareto(
    panels: Mapping[str, Sequence[ParetoPoint]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: Mapping[str, str],
    larger_is_better: bool,
) -> Path | None:
    """:func:`pareto_figure` as a PNG; None (and nothing written) when no panel has a point."""
    fig = pareto_figure(panels, xlabel=xlabel, ylabel=ylabel, larger_is_better=larger_is_better)
    return None if fig is None else save_figure(fig, path)


def pareto_figure(
    panels: Mapping[str, Sequence[ParetoPoint]],
    *,
    xlabel: str,
    ylabel: Mapping[str, str],
    larger_is_better: bool,
) -> Any:
    """Quality vs one cost, one panel per title (``ylabel`` per title), error bars from each point's
    interval, the front highlighted; the keyed points are numbered and listed under their panel."""
    panels = {title: pts for title, pts in panels.items() if pts}
    if not panels:
        return None
    keys = {title: keyed_points(pts) for title, pts in panels.items()}
    lines = max(len(k) for k in keys.values())
    fig, axes = new_figure(1, len(panels), figsize=(6.4 * len(panels), 4.2 + 0.15 * lines), dpi=110)
    better = " (higher is better)" if larger_is_better else " (lower is better)"
    for ax, (title, pts) in zip(axes[0], panels.items(), strict=True):
        _draw_panel(ax, pts, larger_is_better)
        if log_scale(pts):
            ax.set_xscale("log")
        ax.set(xlabel=xlabel + better, ylabel=ylabel.get(title) or "quality", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        key = "\n".join(textwrap.shorten(f"{i:>2}  {p.label}", 95) for i, p in enumerate(keys[title], 1))
        kw = {"xycoords": "axes fraction", "textcoords": "offset points", "va": "top", "fontsize": 7}
        ax.annotate(key, (0, 0), xytext=(0, -36), family="monospace", **kw)
    fig.canvas.draw()  # the layout fixes where the points sit before their numbers are placed
    for ax, title in zip(axes[0], panels, strict=True):
        _number_points(ax, keys[title])
    return fig


def _hover(p: ParetoPoint, xlabel: str) -> str:
    lines = [*(p.detail or p.label).splitlines(), f"{xlabel}: {p.cost:.4g}"]
    if p.best or p.tied:
        lines.append("best" if p.best else "tied with the best")
    return "<br>".join(html.escape(line) for line in lines)


def pareto_html(
    panels: Mapping[str, Sequence[ParetoPoint]],
    *,
    xlabel: str,
    ylabel: Mapping[str, str],
    larger_is_better: bool,
    include_plotlyjs: bool,
) -> str | None:
    """The interactive (plotly) version of :func:`plot_pareto` as an HTML ``<div>``; hovering a point
    shows its ``detail``. ``include_plotlyjs``: embed plotly.js (once per page: no network needed)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = {title: pts for title, pts in panels.items() if pts}
    if not panels:
        return None
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels), horizontal_spacing=0.08)
    for col, (title, pts) in enumerate(panels.items(), 1):
        front = sorted((p for p in pts if p.on_front), key=lambda p: p.cost)
        groups = (
            ("dominated", [p for p in pts if not p.on_front], "#9a9a9a"),
            ("Pareto front", front, "#d62728"),
        )
        for name, sel, color in groups:
            below, above = zip(*(_bars(p) for p in sel), strict=True) if sel else ((), ())
            marker = {
                "color": color,
                "size": [14 if p.best else 8 for p in sel],
                "symbol": ["star" if p.best else "circle" for p in sel],
                "line": {"color": "black", "width": [2 if p.tied or p.best else 0 for p in sel]},
            }
            trace = go.Scatter(
                x=[p.cost for p in sel],
                y=[p.quality for p in sel],
                mode="lines+markers" if name == "Pareto front" else "markers",
                line={"shape": "vh" if larger_is_better else "hv", "width": 1.2},
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                marker=marker,
                error_y={"type": "data", "symmetric": False, "array": above, "arrayminus": below, "width": 2},
                text=[_hover(p, xlabel) for p in sel],
                hovertemplate="%{text}<extra></extra>",
            )
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(title_text=xlabel, type="log" if log_scale(pts) else "linear", row=1, col=col)
        fig.update_yaxes(title_text=ylabel.get(title) or "quality", row=1, col=col)
    fig.update_layout(template="plotly_white", height=460, margin={"t": 50, "b": 50, "l": 60, "r": 20})
    config = {"displaylogo": False, "responsive": True}
    return fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config=config)
