"""Embedding precision as an evaluation-time axis: float32, int8/uint8 and binary/ubinary.

Encode once in float32, then score every precision from the same embeddings. The
quantization itself is sentence-transformers' ``quantize_embeddings`` (ST), so the
codes here are exactly the ones a user would store with ST:

- ``int8`` / ``uint8``: per-dimension [min, max] from a calibration set split into 256
  buckets. Queries and documents use the *same* ranges (from ``calibration_embeddings``,
  by default the documents, which are known when the index is built). Scoring is the dot
  product of the integer codes (exact: computed in float32 while |sum| < 2**24, else
  float64).
- ``binary`` / ``ubinary``: the sign bit of each dimension, 8 per byte (ST stores
  ``binary`` as int8 = packed byte - 128; the bits and all scores are the same).
  Scoring is Hamming distance via faiss ``IndexBinaryFlat``; the reported score is
  ``n_bits - 2 * hamming``, the dot product of the +-1 sign vectors.

Rescoring (``rescore_multiplier > 0``) follows ST's ``semantic_search_faiss``: retrieve
``k * rescore_multiplier`` candidates with the quantized query and corpus, then rescore
them with the *float32 query* against the *quantized document* embeddings, binary codes
unpacked to {0, 1} and int8/uint8 codes dequantized to the lower edge of their bucket;
keep the best k. Only the quantized corpus is needed at query time. (For binary, the
{0, 1} rescoring ranks like the float query dotted with the +-1 signs, since the two
differ by half the query's sum, constant per query.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from embedlab.eval.retrieval import (
    DEFAULT_KS,
    MissingDocPolicy,
    NdcgGain,
    Qrels,
    RetrievalMetrics,
    retrieval_metrics_from_ranked,
)
from embedlab.eval.topk import as_numpy, topk_dot

log = logging.getLogger(__name__)

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")


@dataclass(frozen=True)
class PrecisionSearch:
    """Top-k results of one precision: ids and scores are (Q, k), best first, -1 padded."""

    precision: str
    scores: np.ndarray
    ids: np.ndarray
    rescore_multiplier: int
    bytes_per_vector: int
    dim: int
    search_s: float


@dataclass(frozen=True)
class PrecisionEvaluation:
    """Retrieval metrics of one precision plus the storage it costs."""

    precision: str
    rescore_multiplier: int
    bytes_per_vector: int
    dim: int
    metrics: RetrievalMetrics


def bytes_per_vector(precision: str, dim: int) -> int:
    """Storage of one embedding: 4*d (float32), d (int8/uint8), ceil(d/8) (binary).

    Excludes the int8 calibration ranges (2 * d float32 once per corpus, not per vector).
    """
    if precision == "float32":
        return 4 * dim
    if precision in ("int8", "uint8"):
        return dim
    if precision in ("binary", "ubinary"):
        return math.ceil(dim / 8)
    raise ValueError(f"Unknown precision {precision!r}; known: {PRECISIONS}")


def quantization_ranges(calibration_embeddings: Any) -> np.ndarray:
    """Per-dimension [min; max] of a calibration set, (2, d): ST's int8 bucket ranges."""
    cal = as_numpy(calibration_embeddings, np.float32)
    if cal.ndim != 2 or len(cal) < 2:
        raise ValueError(f"Calibration needs at least 2 embeddings in a 2-D array, got shape {cal.shape}")
    return np.vstack((cal.min(axis=0), cal.max(axis=0)))


def quantize(embeddings: Any, precision: Precision, *, ranges: np.ndarray | None = None) -> np.ndarray:
    """ST's ``quantize_embeddings``; for int8/uint8 pass ``ranges`` so queries and docs share them."""
    from sentence_transformers.util import quantize_embeddings

    if precision in ("int8", "uint8") and ranges is None:
        raise ValueError("int8/uint8 quantization needs ranges: quantization_ranges(calibration_embeddings)")
    return np.asarray(
        quantize_embeddings(as_numpy(embeddings, np.float32), precision=precision, ranges=ranges)
    )


def dequantize(codes: np.ndarray, precision: Literal["int8", "uint8"], ranges: np.ndarray) -> np.ndarray:
    """int8/uint8 codes back to floats at the lower edge of their bucket (as ST's rescoring does)."""
    ranges = ranges.astype(np.float32, copy=False)
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    x = codes.astype(np.float32)
    if precision == "int8":
        x += 128
    return x * steps + ranges[0]


def _ubinary(codes: np.ndarray, precision: str) -> np.ndarray:
    """ST's int8 ``binary`` codes hold packed bytes - 128; faiss wants the uint8 bytes."""
    if precision == "binary":
        return np.ascontiguousarray((codes.astype(np.int16) + 128).astype(np.uint8))
    return np.ascontiguousarray(codes, dtype=np.uint8)


def rescore_candidates(
    query_emb: np.ndarray,
    cand_ids: np.ndarray,
    vectors: Callable[[np.ndarray], np.ndarray],
    k: int,
    *,
    max_floats: int = 1 << 24,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidates by float query . ``vectors(ids)``; keep the best k, best first.

    ``cand_ids`` is (Q, c) with -1 padding; ``vectors`` maps a (B, c) id block to (B, c, d)
    floats. Queries go in blocks of at most ``max_floats`` gathered floats (64 MB), so
    rescoring 10k queries x 400 candidates x 384 dims never holds 6 GB at once.
    """
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


def search_with_precision(
    query_emb: Any,
    doc_emb: Any,
    k: int,
    precision: Precision = "float32",
    *,
    calibration_embeddings: Any = None,
    rescore_multiplier: int = 0,
    chunk_size: int = 1024,
) -> PrecisionSearch:
    """Top-k documents per query when both sides are stored at ``precision``.

    Exact (brute-force) search in every precision, so differences come from the
    quantization alone. See the module docstring for scoring and rescoring.
    """
    q = as_numpy(query_emb, np.float32)
    d = as_numpy(doc_emb, np.float32)
    if d.ndim != 2 or len(d) == 0:
        raise ValueError(f"Empty corpus or bad doc embedding shape {d.shape}")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"Query embeddings {q.shape} do not match doc embeddings {d.shape}")
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; known: {PRECISIONS}")
    if rescore_multiplier < 0:
        raise ValueError(f"rescore_multiplier must be >= 0, got {rescore_multiplier}")
    dim = d.shape[1]
    rescore = rescore_multiplier > 0 and precision != "float32"
    n_cand = min(len(d), k * rescore_multiplier) if rescore else k
    t0 = time.perf_counter()

    if precision == "float32":
        scores, ids = topk_dot(q, d, k, chunk_size=chunk_size)
    elif precision in ("int8", "uint8"):
        if calibration_embeddings is None:
            log.info("No calibration set given: %s ranges come from the %d documents", precision, len(d))
            calibration_embeddings = d
        ranges = quantization_ranges(calibration_embeddings)
        q_codes = quantize(q, precision, ranges=ranges)
        d_codes = quantize(d, precision, ranges=ranges)
        # integer dot products are exact in float32 below 2**24
        exact_dtype = np.float32 if 255 * 255 * dim < 2**24 else np.float64
        scores, ids = topk_dot(
            q_codes.astype(exact_dtype), d_codes.astype(exact_dtype), n_cand, chunk_size=chunk_size
        )
        if rescore:
            scores, ids = rescore_candidates(q, ids, lambda i: dequantize(d_codes[i], precision, ranges), k)
    else:
        import faiss

        q_bits = _ubinary(quantize(q, precision), precision)
        d_bits = _ubinary(quantize(d, precision), precision)
        index = faiss.IndexBinaryFlat(d_bits.shape[1] * 8)
        index.add(d_bits)
        ham, ids = index.search(q_bits, n_cand)
        scores = (index.d - 2 * ham).astype(np.float32)
        if rescore:
            # unpackbits pads to whole bytes: trim back to the embedding dimension, as ST does
            scores, ids = rescore_candidates(
                q, ids, lambda i: np.unpackbits(d_bits[i], axis=-1)[..., :dim].astype(np.float32), k
            )
    ids = ids.astype(np.int64, copy=False)
    scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
    if ids.shape[1] < k:  # fewer documents than k: pad as faiss does
        pad = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return PrecisionSearch(
        precision=precision,
        scores=scores,
        ids=ids,
        rescore_multiplier=rescore_multiplier if rescore else 0,
        bytes_per_vector=bytes_per_vector(precision, dim),
        dim=dim,
        search_s=time.perf_counter() - t0,
    )


def evaluate_precision(
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    qrels: Qrels,
    query_emb: Any,
    doc_emb: Any,
    precision: Precision = "float32",
    ks: Sequence[int] = DEFAULT_KS,
    *,
    calibration_embeddings: Any = None,
    rescore_multiplier: int = 0,
    ignore_identical_ids: bool = False,
    missing_doc_policy: MissingDocPolicy = "error",
    ndcg_gain: NdcgGain = "binary",
) -> PrecisionEvaluation:
    """Retrieval metrics (see :mod:`embedlab.eval.retrieval`) at one precision.

    With ``ignore_identical_ids`` one extra result is fetched per query, so removing
    the query's own document still leaves max(ks) results.
    """
    depth = max(ks) + (1 if ignore_identical_ids else 0)
    res = search_with_precision(
        query_emb,
        doc_emb,
        depth,
        precision,
        calibration_embeddings=calibration_embeddings,
        rescore_multiplier=rescore_multiplier,
    )
    metrics = retrieval_metrics_from_ranked(
        query_ids,
        doc_ids,
        qrels,
        (res.scores, res.ids),
        ks,
        ignore_identical_ids=ignore_identical_ids,
        missing_doc_policy=missing_doc_policy,
        ndcg_gain=ndcg_gain,
    )
    return PrecisionEvaluation(
        precision=precision,
        rescore_multiplier=res.rescore_multiplier,
        bytes_per_vector=res.bytes_per_vector,
        dim=res.dim,
        metrics=metrics,
    )


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows, computed as ST's ``encode(normalize_embeddings=True)`` does
    (torch ``F.normalize``), so int8 codes at bucket edges come out the same."""
    import torch

    return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(x)), p=2, dim=1).numpy()


def pair_similarity_inputs(emb1: Any, emb2: Any, precision: Precision) -> tuple[np.ndarray, np.ndarray, int]:
    """Both sides of scored pairs as sentence-transformers' ``EmbeddingSimilarityEvaluator``
    scores them at ``precision``: (floats of side 1, floats of side 2, bytes per vector).

    As ST does: L2-normalise (``normalize_embeddings=True``), quantize with
    ``quantize_embeddings``, int8/uint8 ranges calibrated on *both* sides together (so a
    sentence gets the same code on either side), binary codes unpacked to {0, 1}; then the
    codes are compared as float32 vectors by the caller's cosine. There is no rescoring:
    a pair has no candidates to re-rank.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; known: {PRECISIONS}")
    a = as_numpy(emb1, np.float32)
    b = as_numpy(emb2, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"Pair embeddings must be two (N, D) arrays of one shape, got {a.shape} and {b.shape}"
        )
    dim = a.shape[1]
    if precision == "float32":
        return a, b, bytes_per_vector(precision, dim)
    a, b = _unit_rows(a), _unit_rows(b)
    if precision in ("int8", "uint8"):
        ranges = quantization_ranges(np.concatenate([a, b]))
        qa, qb = quantize(a, precision, ranges=ranges), quantize(b, precision, ranges=ranges)
        return qa.astype(np.float32), qb.astype(np.float32), bytes_per_vector(precision, dim)
    # unpackbits pads to whole bytes with zeros: trimmed, though zeros change no cosine
    bits = [np.unpackbits(_ubinary(quantize(x, precision), precision), axis=1)[:, :dim] for x in (a, b)]
    return bits[0].astype(np.float32), bits[1].astype(np.float32), bytes_per_vector(precision, dim)
