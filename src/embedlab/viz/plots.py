"""Plots of embedlab's results, drawn on matplotlib's Agg canvas.

Every function uses ``Figure`` + ``FigureCanvasAgg`` directly, never pyplot, so it touches
no GUI backend and no global state (safe inside a Hydra callback or a test process).
matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ParetoPoint:
    """One configuration in a quality-vs-cost panel."""

    cost: float
    quality: float
    spread: float  # error bar (seed standard deviation; NaN when unknown)
    on_front: bool
    label: str


def plot_pareto(
    panels: Mapping[str, Sequence[ParetoPoint]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: Mapping[str, str],
    larger_is_better: bool,
) -> Path | None:
    """Quality vs one cost, one panel per title (``ylabel`` per title); front points in red,
    joined by a line. Returns None (and writes nothing) when no panel has a point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = {title: pts for title, pts in panels.items() if pts}
    if not panels:
        return None
    fig = Figure(figsize=(6.4 * len(panels), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (title, pts) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True):
        for on_front, color, name in ((False, "0.6", "dominated"), (True, "tab:red", "Pareto front")):
            sel = [p for p in pts if p.on_front == on_front]
            if sel:
                ax.errorbar([p.cost for p in sel], [p.quality for p in sel],
                            yerr=[p.spread if math.isfinite(p.spread) else 0.0 for p in sel],
                            fmt="o", color=color, label=name, capsize=3)  # fmt: skip
        front = sorted((p for p in pts if p.on_front), key=lambda p: p.cost)
        if len(front) > 1:
            ax.plot([p.cost for p in front], [p.quality for p in front], color="tab:red", lw=1, alpha=0.6)
        for p in pts if len(pts) <= 12 else front:
            ax.annotate(p.label, (p.cost, p.quality), fontsize=7, xytext=(4, 4), textcoords="offset points")
        xs = [p.cost for p in pts]
        if min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel + (" (higher is better)" if larger_is_better else " (lower is better)"))
        ax.set_ylabel(ylabel.get(title) or "quality")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
