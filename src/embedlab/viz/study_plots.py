"""The studies' figures: similarity heatmaps, distance histograms per dimension, size vs
quality, retrieval under typos. Studies compute numbers (``embedlab.studies``); drawing them
lives here so a study runs (and is tested) without matplotlib.
"""

from __future__ import annotations

import logging
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


class DistanceSample(Protocol):
    """What the histograms read (``studies.dimensions.DimensionStudy``): viz sits below studies."""

    @property
    def distances(
        self,
    ) -> Mapping[tuple[str, int, str], np.ndarray]: ...  # (source, dim, metric) -> distances


class SizeRow(Protocol):
    """What the size plot reads of one variant (``studies.size.VariantResult``)."""

    @property
    def name(self) -> str: ...
    @property
    def total_bytes(self) -> int: ...
    @property
    def latency_s(self) -> float: ...
    @property
    def spearman(self) -> float | None: ...


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: no display on servers and SLURM nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` (parent folders made) and close it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **savefig)
    _pyplot().close(fig)
    return out


def plot_similarity_heatmap(
    sim: np.ndarray, path: str | Path, *, labels: Sequence[str] | None = None, title: str = ""
) -> Path:
    """Heatmap PNG of a similarity matrix; with labels, documents are grouped by label."""
    plt = _pyplot()
    n = sim.shape[0]
    order = np.arange(n)
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} documents.")
        order = np.array(sorted(range(n), key=lambda i: (str(labels[i]), i)))
    fig, ax = plt.subplots(figsize=(8.5, 7), dpi=120)
    image = ax.imshow(sim[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="cosine similarity")
    if labels is not None:  # one tick per label group, at its middle, and lines between groups
        ordered = [str(labels[i]) for i in order]
        starts = [i for i in range(n) if i == 0 or ordered[i] != ordered[i - 1]]
        ends = starts[1:] + [n]
        mids = [(s + e - 1) / 2 for s, e in zip(starts, ends, strict=True)]
        names = [ordered[s] for s in starts]
        ax.set_yticks(mids, [textwrap.fill(n, 18) for n in names], fontsize=7)
        ax.set_xticks(mids, [n[:12] for n in names], fontsize=7)
        for s in starts[1:]:
            ax.axhline(s - 0.5, color="white", lw=0.6)
            ax.axvline(s - 0.5, color="white", lw=0.6)
    ax.set_title(title, fontsize=9)
    out = _save(fig, path, format="png", bbox_inches="tight")  # keeps the long label names inside
    log.info("Wrote a %dx%d similarity heatmap to %s", n, n, out)
    return out


def plot_distance_histograms(study: DistanceSample, path: str | Path, *, title: str = "") -> Path:
    """One panel per (dimension, metric): histograms of every source's distances, normalised.

    Distances are divided by their mean so that spreads compare across sources whose
    scales differ (a Gaussian's euclidean distances grow like sqrt(2 dim)).
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    dims = sorted({k[1] for k in study.distances}, reverse=True)
    metrics = sorted({k[2] for k in study.distances})
    sources = list(dict.fromkeys(k[0] for k in study.distances))
    fig, axes = plt.subplots(len(dims), len(metrics), figsize=(4.2 * len(metrics), 2.3 * len(dims)),
                             dpi=110, squeeze=False, sharex=True)  # fmt: skip
    top = max(float(np.quantile(p / p.mean(), 0.999)) for p in study.distances.values())
    bins = np.linspace(0.0, max(1.5, top), 81)
    colors = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(sources)}
    for r, dim in enumerate(dims):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for source in sources:
                pairs = study.distances.get((source, dim, metric))
                if pairs is None:
                    continue
                ax.hist(pairs / pairs.mean(), bins=bins, density=True, histtype="step", lw=1.2,
                        color=colors[source], label=source)  # fmt: skip
            ax.set_title(f"{metric}, dim {dim}", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(dims) - 1:
                ax.set_xlabel("distance / mean distance", fontsize=8)
    handles = [Line2D([], [], color=colors[s], lw=1.5, label=s) for s in sources]
    fig.legend(handles=handles, loc="upper right", fontsize=8, frameon=False, ncol=len(sources))
    if title:
        fig.suptitle(title, fontsize=9, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path, format="png")


def plot_size_quality(results: Sequence[SizeRow], path: str | Path, title: str) -> Path:
    """Two panels against STS-B Spearman: saved folder size, and encode speed vs the first result."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    base = results[0].latency_s
    for i, r in enumerate(results):
        y = 100 * r.spearman if r.spearman is not None else np.nan
        for ax, x in ((axes[0], r.total_bytes / 1e6), (axes[1], base / r.latency_s)):
            ax.scatter(x, y, s=50, color=f"C{i}")
            ax.annotate(
                r.name, (x, y), textcoords="offset points", xytext=(6, 10 if i % 2 else -12), fontsize=8
            )
    axes[0].set_xlabel("saved model folder (MB)")
    axes[1].set_xlabel(f"encode speed vs {results[0].name} (1 thread, median of rounds)")
    axes[0].set_ylabel("STS-B test Spearman (x100)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path, dpi=120)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std) of seeded repeats; std 0 for a single value."""
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def plot_metric_vs_noise(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, metric: str = "ndcg@10", ylabel: str = "",
    title: str = "",
) -> Path:  # fmt: skip
    """``metric`` against the typo rate, one line per model: mean over seeds, std as error bars.

    ``rows`` are ``{"model", "rate", "seed", metric}`` records (the OOV study's retrieval rows).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    rates = sorted({r["rate"] for r in rows})
    for m in dict.fromkeys(r["model"] for r in rows):
        stats = [mean_std([r[metric] for r in rows if r["model"] == m and r["rate"] == x]) for x in rates]
        ax.errorbar([100 * x for x in rates], [s[0] for s in stats], yerr=[s[1] for s in stats],
                    marker="o", capsize=3, label=m)  # fmt: skip
    ax.set_xlabel("query words with one typo (%)")
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path, dpi=120)


Series = Mapping[str, Sequence[float]]  # legend label -> one value per x category


def plot_grouped_bars(
    panels: Sequence[tuple[str, Sequence[str], Series]],
    path: str | Path,
    *,
    ylim: tuple[float, float] = (0, 1.08),
) -> Path:
    """Panels stacked vertically, each ``(title, categories, series)``: one bar group per
    category, one bar per series, each value printed on its bar."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.6 * len(panels)), squeeze=False)
    for ax, (title, categories, series) in zip(axes[:, 0], panels, strict=True):
        x = np.arange(len(categories))
        width = 0.8 / len(series)
        for j, (label, values) in enumerate(series.items()):
            bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(x, list(categories))
        ax.set_ylim(*ylim)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi=120)


def plot_lines(
    panels: Sequence[tuple[str, str, Sequence[str], Series]],
    path: str | Path,
    *,
    ylim: tuple[float, float] = (0, 100),
) -> Path:
    """Panels side by side, each ``(title, xlabel, categories, series)``: one line per series."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, xlabel, categories, series) in zip(axes[0], panels, strict=True):
        for label, values in series.items():
            ax.plot(list(categories), values, marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.set_ylim(*ylim)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path, dpi=120)
