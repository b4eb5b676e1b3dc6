"""Every plot of embedlab: sweep Pareto fronts and the studies' figures. Studies compute the numbers
(``embedlab.studies``) and run without matplotlib; figures use the Agg canvas, never pyplot (no GUI
backend, no global state)."""

from __future__ import annotations

import itertools
import logging
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)
Series = Mapping[str, Sequence[float]]  # legend label -> one value per x category
Bars = Sequence[tuple[str, Sequence[str], Series]]  # panels of (title, categories, series)
Lines = Sequence[tuple[str, str, Sequence[str], Series]]  # panels of (title, xlabel, categories, series)
Records = Sequence[Mapping[str, Any]]


def new_figure(
    rows: int = 1, cols: int = 1, *, figsize: tuple[float, float], dpi: int = 120, **kw: Any
) -> Any:
    """``(figure, axes)`` on the Agg canvas with constrained layout; ``axes`` is always 2-D."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def save_figure(fig: Any, path: str | Path, **savefig: Any) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", **savefig)
    return out


class DistanceSample(Protocol):  # studies.dimensions.DimensionStudy (viz sits below studies)
    distances: Mapping[tuple[str, int, str], np.ndarray]  # (source, dim, metric) -> distances


class SizeRow(Protocol):  # one studies.size.VariantResult
    name: str
    total_bytes: int
    latency_s: float
    spearman: float | None


def plot_similarity_heatmap(
    sim: np.ndarray, path: str | Path, *, labels: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Heatmap PNG of a similarity matrix; with labels, documents are grouped by label."""
    n = sim.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} documents.")
    order = np.arange(n) if labels is None else np.argsort([str(x) for x in labels], kind="stable")
    fig, ((ax,),) = new_figure(figsize=(8.5, 7))
    image = ax.imshow(sim[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    if labels is not None:  # one tick per label group, at its middle, and lines between groups
        ordered = [str(labels[i]) for i in order]
        starts = [i for i in range(n) if i == 0 or ordered[i] != ordered[i - 1]]
        mids = [(s + e - 1) / 2 for s, e in zip(starts, starts[1:] + [n], strict=True)]
        names = [ordered[s] for s in starts]
        ax.set_yticks(mids, [textwrap.fill(name, 18) for name in names], fontsize=7)
        ax.set_xticks(mids, [name[:12] for name in names], fontsize=7)
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="white", lw=0.6)
            ax.axvline(s - 0.5, color="white", lw=0.6)
    ax.set_title(title, fontsize=9)
    out = save_figure(fig, path, bbox_inches="tight")  # keeps the long label names inside
    log.info("Wrote a %dx%d similarity heatmap to %s", n, n, out)
    return out


def plot_distance_histograms(study: DistanceSample, path: str | Path, *, title: str = "") -> Path:
    """One panel per (dimension, metric): every source's distances over their mean, so spreads
    compare across scales (a Gaussian's euclidean distances grow like sqrt(2 dim))."""
    dims = sorted({k[1] for k in study.distances}, reverse=True)
    metrics = sorted({k[2] for k in study.distances})
    sources = list(dict.fromkeys(k[0] for k in study.distances))
    size = (4.2 * len(metrics), 2.3 * len(dims))
    fig, axes = new_figure(len(dims), len(metrics), figsize=size, dpi=110, sharex=True)
    top = max(float(np.quantile(p / p.mean(), 0.999)) for p in study.distances.values())
    bins = np.linspace(0.0, max(1.5, top), 81)
    for (r, dim), (c, metric) in itertools.product(enumerate(dims), enumerate(metrics)):
        ax = axes[r][c]
        for i, source in enumerate(sources):
            pairs = study.distances.get((source, dim, metric))
            if pairs is not None:
                kw = {"bins": bins, "density": True, "histtype": "step", "lw": 1.2, "color": f"C{i}"}
                ax.hist(pairs / pairs.mean(), **kw)
        ax.set_title(f"{metric}, dim {dim}", fontsize=8)
        ax.tick_params(labelsize=7)
        if r == len(dims) - 1:
            ax.set_xlabel("distance / mean distance", fontsize=8)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i}", lw=1.5, label=s) for i, s in enumerate(sources)]
    fig.legend(handles=handles, loc="outside upper right", fontsize=8, frameon=False, ncol=len(sources))
    if title:
        fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    return save_figure(fig, path)


def plot_size_quality(results: Sequence[SizeRow], path: str | Path, title: str) -> Path:
    """Two panels against STS-B Spearman: saved folder size, and encode speed vs the first result."""
    fig, axes = new_figure(1, 2, figsize=(11, 4.5), sharey=True)
    for i, r in enumerate(results):
        y = 100 * r.spearman if r.spearman is not None else np.nan
        for ax, x in zip(axes[0], (r.total_bytes / 1e6, results[0].latency_s / r.latency_s), strict=True):
            ax.scatter(x, y, s=50, color=f"C{i}")
            ax.annotate(
                r.name, (x, y), textcoords="offset points", xytext=(6, 10 if i % 2 else -12), fontsize=8
            )
    axes[0][0].set(xlabel="saved model folder (MB)", ylabel="STS-B test Spearman (x100)")
    axes[0][1].set_xlabel(f"encode speed vs {results[0].name} (1 thread, median of rounds)")
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, path)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std) of seeded repeats; std 0 for a single value."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def plot_metric_vs_noise(
    rows: Records, path: str | Path, *, metric: str = "ndcg@10", ylabel: str = "", title: str = ""
) -> Path:
    """``metric`` against the typo rate, one line per model (mean over seeds, std as error bars),
    from ``{"model", "rate", "seed", metric}`` rows (the OOV study's retrieval rows)."""
    fig, ((ax,),) = new_figure(figsize=(6, 4))
    rates = sorted({r["rate"] for r in rows})
    for m in dict.fromkeys(r["model"] for r in rows):
        stats = [mean_std([r[metric] for r in rows if r["model"] == m and r["rate"] == x]) for x in rates]
        means, stds = zip(*stats, strict=True)
        ax.errorbar([100 * x for x in rates], means, yerr=stds, marker="o", capsize=3, label=m)
    ax.set(xlabel="query words with one typo (%)", ylabel=ylabel or metric, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_grouped_bars(panels: Bars, path: str | Path, *, ylim: tuple[float, float] = (0, 1.08)) -> Path:
    """Panels stacked vertically, each ``(title, categories, series)``: one bar group per
    category, one bar per series, each value printed on its bar."""
    fig, axes = new_figure(len(panels), 1, figsize=(10, 3.6 * len(panels)))
    for ax, (title, categories, series) in zip(axes[:, 0], panels, strict=True):
        x = np.arange(len(categories))
        width = 0.8 / len(series)
        for j, (label, values) in enumerate(series.items()):
            bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, list(categories))
        ax.set_title(title, fontsize=10)
        ax.set_ylim(*ylim)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def plot_lines(panels: Lines, path: str | Path, *, ylim: tuple[float, float] = (0, 100)) -> Path:
    """Panels side by side, each ``(title, xlabel, categories, series)``: one line per series."""
    fig, axes = new_figure(1, len(panels), figsize=(5.5 * len(panels), 4))
    for ax, (title, xlabel, categories, series) in zip(axes[0], panels, strict=True):
        for label, values in series.items():
            ax.plot(list(categories), values, marker="o", label=label)
        ax.set(title=title, xlabel=xlabel, ylim=ylim)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)
