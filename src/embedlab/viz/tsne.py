"""t-SNE maps of embeddings, coloured by label, saved as PNG and logged to W&B. PCA to ``pca_dims``
first drops noise dimensions and cheapens the neighbour search; one thread is about 4x faster than
two on a 2-core machine shared with other jobs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedlab.console import progress
from embedlab.eval.arrays import as_matrix
from embedlab.viz.plots import new_figure, save_figure

log = logging.getLogger(__name__)

MIN_POINTS = 5  # fewer than this gives no meaningful neighbourhood structure


def tsne_plot(
    embeddings: Any,
    labels: Sequence[object] | None,
    path: str | Path,
    *,
    title: str,
    perplexity: float = 30.0,
    seed: int = 0,
    pca_dims: int = 50,
) -> Path:
    """Project (N, D) embeddings to 2-D with PCA + t-SNE and write a scatter plot PNG. t-SNE needs
    perplexity < N: a larger one is lowered to (N - 1) / 3 and logged, so small sets still get a plot."""
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = as_matrix(embeddings).astype(np.float32)  # 2-D and finite
    n = x.shape[0]
    if n < MIN_POINTS:
        raise ValueError(f"t-SNE needs at least {MIN_POINTS} points, got {n}.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} embeddings.")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}.")
    if perplexity >= n:
        reduced = max(1.0, (n - 1) / 3)
        log.warning("t-SNE perplexity %.1f >= %d points: lowered to %.1f.", perplexity, n, reduced)
        perplexity = reduced
    dims = min(pca_dims, n, x.shape[1])
    # sklearn's TSNE reports no iterations: the bar steps over the stages (PCA, t-SNE, plot)
    with threadpool_limits(1), progress(total=3, desc=f"t-SNE of {n} points", unit="stage") as bar:
        if dims < x.shape[1]:
            x = PCA(n_components=dims, random_state=seed).fit_transform(x)  # (N, dims)
        bar.update()
        tsne = TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca", n_jobs=1)
        xy = tsne.fit_transform(x)  # (N, 2)
        bar.update()
        out = _scatter(xy, labels, path, title)
        bar.update()
    log.info("Wrote t-SNE plot of %d points (perplexity %.1f, PCA %d) to %s", n, perplexity, dims, out)
    return out


def _scatter(xy: Any, labels: Sequence[object] | None, path: str | Path, title: str) -> Path:
    """The (N, 2) map as a scatter PNG, one colour per label."""
    import numpy as np
    from matplotlib import colormaps

    n = len(xy)
    fig, ((ax,),) = new_figure(figsize=(7, 6))
    names = np.array([str(label) for label in labels] if labels is not None else [""] * n)
    groups = sorted(set(names))
    cmap = colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for i, name in enumerate(groups):
        ax.scatter(*xy[names == name].T, s=8, alpha=0.7, color=cmap(i % cmap.N), label=name)
    if labels is not None:
        ax.legend(loc="best", fontsize=7, markerscale=2, frameon=False)
    ax.set(title=title, xticks=[], yticks=[])
    return save_figure(fig, path)


def log_image_to_loggers(loggers: Sequence[Any], key: str, path: str | Path) -> int:
    """Log a PNG to every Lightning WandbLogger in ``loggers`` (others are skipped); returns how
    many received it, so callers can say when none did."""
    from lightning.pytorch.loggers import WandbLogger

    wandb_loggers = [logger for logger in loggers if isinstance(logger, WandbLogger)]
    for logger in wandb_loggers:
        logger.log_image(key=key, images=[str(path)])
    return len(wandb_loggers)
