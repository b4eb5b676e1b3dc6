"""Hybrid retrieval: fuse a dense and a lexical top-k ranking per query.

RRF (Cormack et al., SIGIR 2009) sums 1 / (k + rank); convex fusion sums w * dense + (1 - w) * lexical
after per-query min-max or z-score normalisation, a document missing from one run scoring 0 there.
Both follow ranx's ``fuse`` conventions (tests compare the fused scores); this numpy version works
on the (Q, K) arrays the rankers return, without ranx's numba compile on every job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from embedlab.errors import ConfigError

Norm = Literal["min-max", "z-score"]
Ranking = tuple[np.ndarray, np.ndarray]  # (scores (Q, K), doc indices (Q, K)), best first, -1 padded


@dataclass(frozen=True)
class FusionSpec:
    """``configs/fusion/``: how the dense and BM25 rankings combine (``weight``: the dense share)."""

    name: Literal["rrf", "convex"]
    k: int = 60  # rrf
    norm: Norm = "min-max"  # convex
    weight: float | None = None  # convex; None: chosen on training queries by ``tune_metric``
    tune_metric: str = "ndcg@10"
    depth: int = 100

    def __post_init__(self) -> None:
        if self.name not in ("rrf", "convex"):
            raise ConfigError(f"Unknown fusion '{self.name}'. Choose none, rrf or convex.")
        if self.norm not in ("min-max", "z-score"):
            raise ConfigError(f"Unknown fusion.norm '{self.norm}'. Choose min-max or z-score.")
        if self.weight is not None and not 0.0 <= self.weight <= 1.0:
            raise ConfigError(
                f"fusion.weight={self.weight}: the dense share must lie in [0, 1] (null: tune it)."
            )
        if self.k < 1 or self.depth < 1:
            raise ConfigError(
                f"fusion.k and fusion.depth must be positive, got k={self.k}, depth={self.depth}."
            )


def fuse(spec: FusionSpec, dense: Ranking, lexical: Ranking, *, weight: float | None = None) -> Ranking:
    """``dense`` and ``lexical`` fused as ``spec`` says (``weight`` overrides ``spec.weight``)."""
    if spec.name == "rrf":
        return rrf([dense, lexical], k=spec.k, depth=spec.depth)
    w = spec.weight if weight is None else weight
    if w is None:
        raise ValueError("convex fusion needs a weight: set fusion.weight or choose one on training queries")
    return convex([dense, lexical], [w, 1.0 - w], norm=spec.norm, depth=spec.depth)


def _normalise(scores: np.ndarray, valid: np.ndarray, norm: Norm) -> np.ndarray:
    """Per-row normalisation over the retrieved (valid) entries, as ranx's min-max / zmuv."""
    masked = np.where(valid, scores, np.nan)
    if norm == "min-max":
        low, high = np.nanmin(masked, axis=1, keepdims=True), np.nanmax(masked, axis=1, keepdims=True)
        return (scores - low) / np.maximum(high - low, 1e-9)
    if norm == "z-score":
        mean, std = np.nanmean(masked, axis=1, keepdims=True), np.nanstd(masked, axis=1, keepdims=True)
        return (scores - mean) / np.maximum(std, 1e-9)
    raise ValueError(f"fusion norm must be 'min-max' or 'z-score', got {norm!r}")


def _fuse(rankings: Sequence[Ranking], contributions: Sequence[np.ndarray], depth: int) -> Ranking:
    """Sum each document's contributions over rankings; keep the best ``depth`` per query.

    Ties go to the lower document index, as everywhere in embedlab's rankings."""
    ids = np.concatenate([r[1] for r in rankings], axis=1)
    values = np.concatenate(contributions, axis=1)
    out_scores = np.full((len(ids), depth), -np.inf, dtype=np.float64)
    out_ids = np.full((len(ids), depth), -1, dtype=np.int64)
    for q, (row_ids, row_values) in enumerate(zip(ids, values, strict=True)):
        keep = row_ids >= 0
        docs, inverse = np.unique(row_ids[keep], return_inverse=True)
        fused = np.bincount(inverse, weights=row_values[keep], minlength=len(docs))
        order = np.lexsort((docs, -fused))[:depth]
        out_scores[q, : len(order)], out_ids[q, : len(order)] = fused[order], docs[order]
    return out_scores, out_ids


def _check(rankings: Sequence[Ranking]) -> None:
    if len(rankings) < 2:
        raise ValueError("fusion needs at least two rankings")
    if len({r[1].shape[0] for r in rankings}) != 1:
        raise ValueError(f"rankings cover different query counts: {[r[1].shape[0] for r in rankings]}")


def rrf(rankings: Sequence[Ranking], *, k: int = 60, depth: int = 100) -> Ranking:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank of d), rank from 1."""
    _check(rankings)
    contributions = []
    for _, ids in rankings:
        ranks = np.arange(1, ids.shape[1] + 1, dtype=np.float64)
        contributions.append(np.where(ids >= 0, 1.0 / (k + ranks), 0.0))
    return _fuse(rankings, contributions, depth)


def convex(rankings: Sequence[Ranking], weights: Sequence[float], *, norm: Norm, depth: int = 100) -> Ranking:
    """Weighted sum of per-query normalised scores (a document absent from a ranking adds 0)."""
    _check(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    contributions = []
    for (scores, ids), w in zip(rankings, weights, strict=True):
        valid = ids >= 0
        contributions.append(np.where(valid, w * _normalise(scores.astype(np.float64), valid, norm), 0.0))
    return _fuse(rankings, contributions, depth)


def choose_weight(
    dense: Ranking, lexical: Ranking, score: Callable[[Ranking], float], *, norm: Norm, grid: int = 21
) -> tuple[float, dict[float, float]]:
    """The dense weight w in {0, 1/(grid-1), ..., 1} whose fusion scores best under ``score``.

    Call it with rankings of training or validation queries only: choosing w on test queries would
    report a tuned, optimistic number. Ties go to the smaller w (less weight on the learned model).
    """
    tried = {}
    for w in np.linspace(0.0, 1.0, grid):
        tried[round(float(w), 4)] = score(convex([dense, lexical], [w, 1.0 - w], norm=norm))
    best = max(tried.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return best, tried
