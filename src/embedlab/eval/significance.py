"""Evaluation sampling noise: bootstrap intervals, paired tests against the best, Holm correction.

A metric averaged over 300 queries moves by several points when other queries are drawn, so every
headline number gets a seeded percentile-bootstrap interval, and a configuration is "tied with the
best" unless a paired test on the same queries (or pairs) rejects it after Holm's correction.
Retrieval uses Fisher's paired randomization test (Smucker et al., CIKM 2007; ranx's ``fisher``);
correlations (STS Spearman / Pearson) use a paired bootstrap of the difference, resampling pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

CorrelationName = str  # "spearman" | "pearson"
RESAMPLES = 1000  # bootstrap resamples: every interval and the STS paired test
PERMUTATIONS = 10_000  # randomization-test permutations (p resolution 1e-4)
_CHUNK = 2000  # resamples per vectorised block: bounds memory at _CHUNK x n floats


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval over ``n`` queries or pairs."""

    value: float
    low: float
    high: float
    n: int
    resamples: int
    level: float
    seed: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _resample_blocks(n: int, resamples: int, seed: int):
    """Index blocks (b, n) drawn with replacement, the same sequence for a given seed."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        b = min(_CHUNK, resamples - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _check(values: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or len(v) < 2:
        raise ValueError(f"{what}: need a 1-D array of at least 2 values, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{what}: {int((~np.isfinite(v)).sum())} values are NaN or infinite")
    return v


def _interval(value: float, stats: np.ndarray, n: int, level: float, seed: int) -> Interval:
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high), n, len(stats), level, seed)


def mean_interval(values, *, resamples: int = RESAMPLES, level: float = 0.95, seed: int = 0) -> Interval:
    """Interval of a mean over per-query values (nDCG@10 of each query, ...)."""
    v = _check(values, "mean_interval")
    stats = np.concatenate([v[idx].mean(axis=1) for idx in _resample_blocks(len(v), resamples, seed)])
    return _interval(v.mean(), stats, len(v), level, seed)


def _row_corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of (b, n) arrays; constant rows give NaN."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=1) / np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))


def _resampled_corr(method: CorrelationName) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Correlation of gold vs predicted for each resample; Spearman re-ranks within the resample."""
    if method == "pearson":
        return _row_corr
    if method == "spearman":
        from scipy.stats import rankdata  # scipy.stats costs ~0.5 s to import: only when ranking

        return lambda g, p: _row_corr(rankdata(g, axis=1), rankdata(p, axis=1))
    raise ValueError(f"correlation must be 'spearman' or 'pearson', got {method!r}")


def correlation_interval(
    gold, predicted, method: CorrelationName = "spearman", *, resamples: int = RESAMPLES, level=0.95, seed=0
) -> Interval:
    """Interval of an STS correlation, resampling (gold, predicted) pairs together."""
    g, p = _check(gold, "gold scores"), _check(predicted, "predicted similarities")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gold scores but {len(p)} predictions")
    corr = _resampled_corr(method)
    value = float(corr(g[None], p[None])[0])
    stats = np.concatenate([corr(g[idx], p[idx]) for idx in _resample_blocks(len(g), resamples, seed)])
    return _interval(value, stats[np.isfinite(stats)], len(g), level, seed)


def randomization_test(a, b, *, permutations: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided p-value of Fisher's paired randomization test on per-query values ``a`` vs ``b``.

    Under H0 the two systems' values of each query are exchangeable, so each permutation swaps
    them at random (flips the sign of the paired difference). As ranx: p = share of permutations
    whose |mean difference| reaches the observed one (no +1 correction).
    """
    x, y = _check(a, "randomization_test a"), _check(b, "randomization_test b")
    if len(x) != len(y):
        raise ValueError(f"paired test needs equal lengths, got {len(x)} and {len(y)}")
    diff = x - y
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < permutations:
        block = min(_CHUNK, permutations - done)
        signs = rng.integers(0, 2, size=(block, len(diff))) * 2 - 1
        # a float tolerance so that exact ties (|perm| == observed) count, as in exact arithmetic
        hits += int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum())
        done += block
    return hits / permutations


def correlation_test(
    gold, predicted_a, predicted_b, method: CorrelationName = "spearman", *, resamples=RESAMPLES, seed=0
) -> float:
    """Two-sided p-value that two systems' correlations with the same gold scores differ.

    Paired bootstrap (resample pairs, both systems on the same draw); the null distribution is the
    bootstrap distribution of the difference shifted to mean zero: p = P(|d* - d| >= |d|).
    """
    g = _check(gold, "gold scores")
    pa, pb = _check(predicted_a, "predictions a"), _check(predicted_b, "predictions b")
    if not len(g) == len(pa) == len(pb):
        raise ValueError(f"lengths differ: gold {len(g)}, a {len(pa)}, b {len(pb)}")
    corr = _resampled_corr(method)
    observed = float(corr(g[None], pa[None])[0] - corr(g[None], pb[None])[0])
    deltas = np.concatenate(
        [corr(g[i], pa[i]) - corr(g[i], pb[i]) for i in _resample_blocks(len(g), resamples, seed)]
    )
    deltas = deltas[np.isfinite(deltas)]
    return float((np.abs(deltas - observed) >= abs(observed) - 1e-12).mean())


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


# Retrieval metrics that get intervals when a job reports them (plus the data's headline metric).
INTERVAL_METRICS = (
    *("ndcg@10", "mrr@10", "map@100", "recall@10", "recall@100", "accuracy@1", "precision@10"),
    *("answer_hit@1", "answer_hit@5", "answer_hit@10"),
)


def per_query_intervals(
    per_query: dict[str, dict[str, dict[str, float]]],
    metrics: tuple[str, ...] = INTERVAL_METRICS,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, Interval]:
    """``{metric + cell tag: Interval}`` from ``{cell tag: {query id: {metric: value}}}``: each interval
    over the queries that have the value, resampled in query-id order (so seeds are comparable)."""
    out = {}
    for tag, rows in per_query.items():
        ids = sorted(rows)
        for m in metrics:
            values = [rows[q][m] for q in ids if m in rows[q]]
            if len(values) >= 2:
                out[f"{m}{tag}"] = mean_interval(values, resamples=resamples, seed=seed)
    return out
