"""Exact top-k ranking in bounded memory, best first, ties to the lowest document index.

Kept by hand: numpy/torch ``topk`` break ties arbitrarily and faiss's flat index builds no
(Q, D) block per chunk with a deterministic (-score, index) order; metrics must not depend
on chunk sizes. Used by retrieval metrics, embedding precision and the index evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from embedlab.errors import DataError


def as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if dtype is None and str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def _topk_block(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each row, sorted by (-score, column index). block: (B, D), k <= D."""
    n_rows, n_cols = block.shape
    if k == n_cols:
        idx = np.broadcast_to(np.arange(n_cols), block.shape).copy()
    else:
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(block, idx, axis=1)
        # argpartition breaks ties at the k-th score arbitrarily; reselect those rows so
        # that the lowest column indices win, as in the final (-score, index) order.
        thr = vals.min(axis=1)
        tied_rows = np.flatnonzero((block >= thr[:, None]).sum(axis=1) > k)
        for r in tied_rows:
            row = block[r]
            above = np.flatnonzero(row > thr[r])
            at = np.flatnonzero(row == thr[r])[: k - len(above)]
            idx[r] = np.concatenate([above, at])
    vals = np.take_along_axis(block, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _finalise_block(
    vals: np.ndarray, idx: np.ndarray, k: int, exclude: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drop excluded documents (one per row at most) and pad or cut to k with (-inf, -1)."""
    vals = vals.astype(np.float32, copy=False)
    if exclude is not None:
        hit = idx == exclude[:, None]  # (B, depth)
        idx = np.where(hit, -1, idx)
        vals = np.where(hit, -np.inf, vals).astype(np.float32)
        order = np.argsort(hit, axis=1, kind="stable")  # removed slot to the end, order kept
        idx = np.take_along_axis(idx, order, axis=1)
        vals = np.take_along_axis(vals, order, axis=1)
    out_v = np.full((len(vals), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(idx), k), -1, dtype=np.int64)
    w = min(k, vals.shape[1])
    out_v[:, :w] = vals[:, :w]
    out_i[:, :w] = idx[:, :w]
    return out_v, out_i


def _iter_topk(
    get_block: Any, n_queries: int, n_docs: int, k: int, exclude: np.ndarray | None, chunk_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield top-k per chunk of ``chunk_size`` queries; get_block(a, b) returns their (B, D) scores."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    depth = min(k + (1 if exclude is not None else 0), n_docs)
    for start in range(0, n_queries, chunk_size):
        stop = min(start + chunk_size, n_queries)
        block = np.asarray(get_block(start, stop))  # (B, D)
        if np.isnan(block).any():
            raise DataError(f"Scores for queries {start}..{stop - 1} contain NaN (zero-norm embeddings?).")
        vals, idx = _topk_block(block, depth)
        yield _finalise_block(vals, idx, k, None if exclude is None else exclude[start:stop])


def _collect(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def topk_from_scores(
    scores: Any,
    k: int,
    *,
    rows: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, doc indices) per row of a (Q, D) score matrix, best first.

    Rows are processed ``chunk_size`` at a time so the temporaries stay bounded;
    ``rows`` selects a subset of rows without copying the whole matrix. ``exclude[i]``
    (a doc index or -1) is left out of the i-th selected row's ranking. Rows with fewer
    than k eligible documents are padded with score -inf and index -1 (as faiss does).
    """
    s = as_numpy(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (queries, docs), got shape {s.shape}")
    if s.shape[1] == 0:
        raise DataError("Empty corpus: the score matrix has no document columns.")
    sel = np.arange(s.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    parts = list(_iter_topk(lambda a, b: s[sel[a:b]], len(sel), s.shape[1], k, exclude, chunk_size))
    return _collect(parts, k)


def topk_dot(
    query_emb: Any,
    doc_emb: Any,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product (= cosine for unit-norm embeddings), best first.

    Never builds the (Q, D) matrix: each chunk of ``chunk_size`` queries is scored
    against all documents, so peak memory is chunk_size * D floats.
    """
    q = as_numpy(query_emb, np.float32)
    d = as_numpy(doc_emb, np.float32)
    if d.ndim != 2 or d.shape[0] == 0:
        raise DataError(f"Empty corpus or bad doc embedding shape {d.shape}.")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"Query embeddings {q.shape} do not match doc embeddings {d.shape}.")
    parts = list(_iter_topk(lambda a, b: q[a:b] @ d.T, q.shape[0], d.shape[0], k, exclude, chunk_size))
    return _collect(parts, k)


def ranked_to_array(ranked: Any, n_queries: int, n_docs: int) -> np.ndarray:
    """(Q, K) doc indices best first, -1 padded, from (scores, ids) arrays or (idx, score) lists."""
    if isinstance(ranked, tuple) and len(ranked) == 2 and hasattr(ranked[1], "shape"):
        scores, ids = as_numpy(ranked[0], np.float64), as_numpy(ranked[1]).astype(np.int64)
        if scores.shape != ids.shape or ids.ndim != 2:
            raise ValueError(
                f"(scores, ids) must be two arrays of equal 2-D shape, got {scores.shape}, {ids.shape}"
            )
        # sort by (-score, index) with padding (-1) last, so callers may pass unsorted rows
        key_pad = ids < 0
        order = np.lexsort((ids, -np.where(key_pad, -np.inf, scores), key_pad), axis=-1)
        ids = np.take_along_axis(ids, order, axis=1)
    else:
        width = max((len(r) for r in ranked), default=0)
        ids = np.full((len(ranked), width), -1, dtype=np.int64)
        for q, row in enumerate(ranked):
            rows = sorted(((float(s), int(i)) for i, s in row if int(i) >= 0), key=lambda t: (-t[0], t[1]))
            ids[q, : len(rows)] = [i for _, i in rows]
    if len(ids) != n_queries:
        raise ValueError(f"ranked results hold {len(ids)} rows, expected one per query ({n_queries})")
    if ids.size and ids.max() >= n_docs:
        raise ValueError(f"ranked doc index {int(ids.max())} out of range for {n_docs} documents")
    return ids
