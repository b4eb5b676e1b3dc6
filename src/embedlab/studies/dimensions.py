"""Concentration of distances: how pairwise distances spread at each embedding dimension.

In high dimensions distances between random points concentrate (Beyer et al. 1999; Aggarwal et al.
2001); sentence embeddings near a low-dimensional manifold should keep more contrast than Gaussian
vectors. :func:`dimension_study` measures both, for full and truncated (prefix) embeddings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from embedlab.eval.arrays import as_matrix

log = logging.getLogger(__name__)

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[Metric, ...] = ("cosine", "euclidean")
RANDOM_SOURCE = "gaussian"


def pairwise_distances(x: Any, metric: Metric) -> np.ndarray:
    """The N (N - 1) / 2 distances between distinct points (1 - cosine, or euclidean), as ``pdist``."""
    from scipy.spatial.distance import pdist

    if metric not in METRICS:
        raise ValueError(f"Unknown metric '{metric}'. Choose one of {METRICS}.")
    return np.maximum(pdist(as_matrix(x, "points", min_rows=3), metric), 0.0)  # rounding can dip below 0


def relative_contrast(d: np.ndarray) -> float:
    """Mean over points of (farthest - nearest) / nearest distance, from an (N, N) matrix; points
    with a duplicate (nearest distance 0, infinite contrast) are skipped."""
    n = d.shape[0]
    off = d[~np.eye(n, dtype=bool)].reshape(n, n - 1)  # (N, N-1): each point's distances to the others
    nearest, farthest = off.min(axis=1), off.max(axis=1)
    keep = nearest > 1e-12
    if not keep.any():
        raise ValueError("Every point has a duplicate: relative contrast is undefined.")
    return float(((farthest[keep] - nearest[keep]) / nearest[keep]).mean())


@dataclass(frozen=True)
class DistanceStats:
    source: str  # e.g. "minilm", "gaussian"
    dim: int
    metric: str
    n_points: int
    mean: float
    std: float
    cv: float  # std / mean: how concentrated the distances are (smaller: more)
    relative_contrast: float  # mean (D_max - D_min) / D_min per point (smaller: more concentrated)


def distance_stats(x: Any, metric: Metric, *, source: str = "") -> tuple[DistanceStats, np.ndarray]:
    """Summary statistics of the pairwise distances of ``x`` and the distances themselves."""
    from scipy.spatial.distance import squareform

    arr = as_matrix(x, "points", min_rows=3)
    pairs = pairwise_distances(arr, metric)
    mean, std = float(pairs.mean()), float(pairs.std())
    cv = std / mean if mean > 0 else float("nan")
    contrast = relative_contrast(squareform(pairs))
    return DistanceStats(source, arr.shape[1], metric, arr.shape[0], mean, std, cv, contrast), pairs


def gaussian_points(n: int, dim: int, *, seed: int = 0) -> np.ndarray:
    """(n, dim) i.i.d. standard normal vectors: the no-structure reference."""
    return np.random.default_rng(seed).standard_normal((n, dim))


@dataclass(frozen=True)
class DimensionStudy:
    stats: list[DistanceStats]
    distances: dict[tuple[str, int, str], np.ndarray]  # (source, dim, metric) -> pairwise distances

    def rows(self) -> list[dict[str, object]]:
        return [asdict(s) for s in self.stats]


def dimension_study(
    embeddings: Mapping[str, Any],
    dims: Sequence[int | None] = (None, 256, 128, 64),
    *,
    metrics: Sequence[Metric] = METRICS,
    seed: int = 0,
) -> DimensionStudy:
    """Distance statistics per source and prefix length in ``dims`` (None: full; larger than a source:
    skipped), next to Gaussian vectors of each size. Prefixes are not renormalised: euclidean sees
    what an index storing the prefix would."""
    study = DimensionStudy([], {})
    random_dims: dict[int, int] = {}  # dim -> number of points to draw

    def measure(source: str, x: np.ndarray) -> None:
        for metric in metrics:
            s, study.distances[(source, x.shape[1], metric)] = distance_stats(x, metric, source=source)
            study.stats.append(s)

    for source, emb in embeddings.items():
        if source == RANDOM_SOURCE:
            raise ValueError(f"'{RANDOM_SOURCE}' is reserved for the random reference; rename that source.")
        x = as_matrix(emb, "points", min_rows=3)
        for dim in dims:
            d = x.shape[1] if dim is None else int(dim)
            if d > x.shape[1]:
                log.info("%s has %d dimensions: skipping %d.", source, x.shape[1], d)
                continue
            if d < 1:
                raise ValueError(f"dimensions must be >= 1, got {d}.")
            random_dims[d] = max(random_dims.get(d, 0), x.shape[0])
            measure(source, x[:, :d])
    for d, n in sorted(random_dims.items(), reverse=True):
        measure(RANDOM_SOURCE, gaussian_points(n, d, seed=seed))
    return study
