"""(N, D) embedding arrays: input checks, row normalisation, exact top-k in bounded memory and
re-ranking. Top-k is kept by hand: numpy/torch ``topk`` and faiss's flat index break ties arbitrarily,
and metrics must not depend on chunk sizes (ties go to the lowest doc index; short rows are padded
with (-inf, -1), as faiss does)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from embedlab.errors import DataError


def as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def as_f32(x: Any, what: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, D) array (what faiss and the dot products take)."""
    a = np.ascontiguousarray(as_numpy(x, np.float32))
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n, dim), got shape {a.shape}")
    return a


def as_matrix(x: Any, what: str = "embeddings", *, min_rows: int = 1) -> np.ndarray:
    """``x`` as a finite float64 (N, D) array with N >= ``min_rows``; raises ValueError otherwise."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < min_rows:
        need = "non-empty" if min_rows == 1 else f"N >= {min_rows}"
        raise ValueError(f"{what} must be a 2-D (N, D) array ({need}), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} hold NaN or infinite values.")
    return arr


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero instead of becoming NaN)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pad_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) float32 scores and int64 ids: the first k columns, padded with (-inf, -1)."""
    out_s = np.full((len(ids), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(ids), k), -1, dtype=np.int64)
    w = min(k, ids.shape[1])
    out_s[:, :w], out_i[:, :w] = scores[:, :w], ids[:, :w]
    return out_s, out_i


def _topk_block(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each row of a (B, D) block, k <= D, sorted by (-score, column index)."""
    if k == block.shape[1]:
        idx = np.broadcast_to(np.arange(k), block.shape).copy()
    else:
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k]
        # argpartition breaks ties at the k-th score arbitrarily: there the lowest columns win
        thr = np.take_along_axis(block, idx, axis=1).min(axis=1)
        for r in np.flatnonzero((block >= thr[:, None]).sum(axis=1) > k):
            above = np.flatnonzero(block[r] > thr[r])
            idx[r] = np.concatenate([above, np.flatnonzero(block[r] == thr[r])[: k - len(above)]])
    vals = np.take_along_axis(block, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def _chunked_topk(
    block_of: Callable[[int, int], np.ndarray],
    n_queries: int,
    n_docs: int,
    k: int,
    exclude: np.ndarray | None,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top k per query, ``block_of(a, b)`` giving the (b - a, D) scores of ``chunk_size`` queries."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    depth = min(k + (1 if exclude is not None else 0), n_docs)
    parts = [(np.zeros((0, k), np.float32), np.zeros((0, k), np.int64))]
    for a in range(0, n_queries, chunk_size):
        b = min(a + chunk_size, n_queries)
        block = np.asarray(block_of(a, b))  # (B, D)
        if np.isnan(block).any():
            raise DataError(f"Scores for queries {a}..{b - 1} contain NaN (zero-norm embeddings?).")
        vals, idx = _topk_block(block, depth)
        if exclude is not None:  # drop the excluded doc; its slot moves to the end, order kept
            hit = idx == exclude[a:b, None]
            order = np.argsort(hit, axis=1, kind="stable")
            idx = np.take_along_axis(np.where(hit, -1, idx), order, axis=1)
            vals = np.take_along_axis(np.where(hit, -np.inf, vals), order, axis=1)
        parts.append(pad_topk(vals, idx, k))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def topk_from_scores(
    scores: Any,
    k: int,
    *,
    rows: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, doc indices) of the ``rows`` (default all) of a (Q, D) score matrix;
    ``exclude[i]`` (a doc index or -1) is left out of the i-th selected row's ranking."""
    s = as_numpy(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (queries, docs), got shape {s.shape}")
    if s.shape[1] == 0:
        raise DataError("Empty corpus: the score matrix has no document columns.")
    sel = np.arange(s.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    return _chunked_topk(lambda a, b: s[sel[a:b]], len(sel), s.shape[1], k, exclude, chunk_size)


def query_docs(query_emb: Any, doc_emb: Any) -> tuple[np.ndarray, np.ndarray]:
    """float32 (Q, D) queries and (N, D) documents, checked to match and N >= 1."""
    q, d = as_numpy(query_emb, np.float32), as_numpy(doc_emb, np.float32)
    if d.ndim != 2 or d.shape[0] == 0:
        raise DataError(f"Empty corpus or bad doc embedding shape {d.shape}.")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"Query embeddings {q.shape} do not match doc embeddings {d.shape}.")
    return q, d


def topk_dot(
    query_emb: Any,
    doc_emb: Any,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    chunk_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product (cosine for unit rows); never holds more than chunk_size * D scores."""
    q, d = query_docs(query_emb, doc_emb)
    return _chunked_topk(lambda a, b: q[a:b] @ d.T, q.shape[0], d.shape[0], k, exclude, chunk_size)


def rescore_candidates(
    query_emb: np.ndarray,
    cand_ids: np.ndarray,
    vectors: Callable[[np.ndarray], np.ndarray],
    k: int,
    *,
    max_floats: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank (Q, c) candidate ids (-1 padded) by float query . ``vectors(ids)`` ((B, c, d)); best k.
    Queries go in blocks of at most ``max_floats`` gathered floats (64 MB), not 6 GB at once."""
    n_q, n_c = cand_ids.shape
    width = min(k, n_c)
    out_s = np.full((n_q, width), -np.inf, dtype=np.float32)
    out_i = np.full((n_q, width), -1, dtype=np.int64)
    step = max(1, max_floats // max(1, n_c * query_emb.shape[1]))
    for a in range(0, n_q, step):
        ids = cand_ids[a : a + step].astype(np.int64, copy=False)
        cand = vectors(np.where(ids >= 0, ids, 0))  # (B, c, d)
        scores = np.einsum("qd,qcd->qc", query_emb[a : a + step], cand).astype(np.float32)
        scores[ids < 0] = -np.inf
        order = np.lexsort((ids, -scores), axis=-1)[:, :width]
        out_s[a : a + step] = np.take_along_axis(scores, order, axis=1)
        out_i[a : a + step] = np.take_along_axis(ids, order, axis=1)
    return out_s, out_i


def ranked_to_array(ranked: Any, n_queries: int, n_docs: int) -> np.ndarray:
    """(Q, K) doc indices best first, -1 padded, from (scores, ids) arrays or (idx, score) lists."""
    if isinstance(ranked, tuple) and len(ranked) == 2 and hasattr(ranked[1], "shape"):
        scores, ids = as_numpy(ranked[0], np.float64), as_numpy(ranked[1]).astype(np.int64)
        if scores.shape != ids.shape or ids.ndim != 2:
            raise ValueError(
                f"(scores, ids) must be two arrays of equal 2-D shape, got {scores.shape}, {ids.shape}"
            )
        # sort by (-score, index) with padding (-1) last, so callers may pass unsorted rows
        pad = ids < 0
        ids = np.take_along_axis(
            ids, np.lexsort((ids, -np.where(pad, -np.inf, scores), pad), axis=-1), axis=1
        )
    else:
        ids = np.full((len(ranked), max((len(r) for r in ranked), default=0)), -1, dtype=np.int64)
        for q, row in enumerate(ranked):
            rows = sorted(((float(s), int(i)) for i, s in row if int(i) >= 0), key=lambda t: (-t[0], t[1]))
            ids[q, : len(rows)] = [i for _, i in rows]
    if len(ids) != n_queries:
        raise ValueError(f"ranked results hold {len(ids)} rows, expected one per query ({n_queries})")
    if ids.size and ids.max() >= n_docs:
        raise ValueError(f"ranked doc index {int(ids.max())} out of range for {n_docs} documents")
    return ids
