"""t-SNE maps of embeddings, coloured by label, saved as PNG and logged to W&B.

Embeddings go through PCA to ``pca_dims`` first: it removes noise dimensions and makes
t-SNE's neighbour search much cheaper. t-SNE then runs on one thread: on this 2-core
machine shared with other jobs, one thread was about 4x faster than two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    """Project (N, D) embeddings to 2-D with PCA + t-SNE and write a scatter plot PNG.

    t-SNE needs perplexity < N; a larger request is lowered to (N - 1) / 3 and logged
    rather than failing, so small held-out sets still get a plot.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and SLURM nodes
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, D) array, got shape {x.shape}.")
    n = x.shape[0]
    if n < MIN_POINTS:
        raise ValueError(f"t-SNE needs at least {MIN_POINTS} points, got {n}.")
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values.")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} embeddings.")
    if perplexity <= 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}.")
    if perplexity >= n:
        reduced = max(1.0, (n - 1) / 3)
        log.warning("t-SNE perplexity %.1f >= %d points: lowered to %.1f.", perplexity, n, reduced)
        perplexity = reduced
    with threadpool_limits(1):
        dims = min(pca_dims, n, x.shape[1])
        if dims < x.shape[1]:
            x = PCA(n_components=dims, random_state=seed).fit_transform(x)  # (N, dims)
        xy = TSNE(
            n_components=2, perplexity=perplexity, random_state=seed, init="pca", n_jobs=1
        ).fit_transform(x)  # (N, 2)

    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.7)
    else:
        names = [str(label) for label in labels]
        cmap = plt.get_cmap("tab10" if len(set(names)) <= 10 else "tab20")
        for i, name in enumerate(sorted(set(names))):
            mask = np.array([v == name for v in names])
            ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.7, color=cmap(i % cmap.N), label=name)
        ax.legend(loc="best", fontsize=7, markerscale=2, frameon=False)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    log.info("Wrote t-SNE plot of %d points (perplexity %.1f, PCA %d) to %s", n, perplexity, dims, out)
    return out


def log_image_to_loggers(loggers: Sequence[Any], key: str, path: str | Path) -> int:
    """Log a PNG to every Lightning WandbLogger in ``loggers``; others are skipped.

    Returns how many loggers received it, so callers can say when none did.
    """
    from lightning.pytorch.loggers import WandbLogger

    sent = 0
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(path)])
            sent += 1
    return sent
