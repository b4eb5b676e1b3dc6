"""Embedding precision as an evaluation-time axis: float32, int8/uint8 and binary/ubinary.

Encode once in float32, quantize with sentence-transformers' ``quantize_embeddings`` (the codes a
user would store with ST), score every precision from the same embeddings. int8/uint8: queries and
docs share per-dimension ranges (by default from the documents); scores are exact integer dot
products. binary/ubinary: the same sign bits (ST's int8 ``binary`` is the packed byte - 128), Hamming
search in faiss, score ``n_bits - 2 * hamming`` (the dot product of the +-1 sign vectors).
Rescoring follows ST's ``semantic_search_faiss``: ``k * rescore_multiplier`` candidates re-ranked by
the float32 query against the quantized docs (bits unpacked to {0, 1}, int8 codes dequantized).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Unpack

import numpy as np

from embedlab.eval.arrays import as_numpy
from embedlab.eval.qrels import Qrels, RankingKwargs
from embedlab.eval.retrieval import DEFAULT_KS, RetrievalMetrics, retrieval_metrics_from_ranked
from embedlab.eval.topk import pad_topk, rescore_candidates, topk_dot

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


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; known: {PRECISIONS}")


def bytes_per_vector(precision: str, dim: int) -> int:
    """Storage of one embedding: 4*d (float32), d (int8/uint8), ceil(d/8) (binary); the int8
    calibration ranges (2 * d float32 per corpus) are not counted."""
    _check_precision(precision)
    return {"float32": 4 * dim, "int8": dim, "uint8": dim}.get(precision, math.ceil(dim / 8))


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
    return np.ascontiguousarray(
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
    """Top-k documents per query with both sides stored at ``precision``, by exact (brute-force)
    search, so differences come from the quantization alone."""
    q = as_numpy(query_emb, np.float32)
    d = as_numpy(doc_emb, np.float32)
    if d.ndim != 2 or len(d) == 0:
        raise ValueError(f"Empty corpus or bad doc embedding shape {d.shape}")
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"Query embeddings {q.shape} do not match doc embeddings {d.shape}")
    _check_precision(precision)
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
        d_codes = quantize(d, precision, ranges=ranges)
        exact = np.float32 if 255 * 255 * dim < 2**24 else np.float64  # integer dot products stay exact
        codes = (quantize(q, precision, ranges=ranges).astype(exact), d_codes.astype(exact))
        scores, ids = topk_dot(*codes, n_cand, chunk_size=chunk_size)
        if rescore:
            scores, ids = rescore_candidates(q, ids, lambda i: dequantize(d_codes[i], precision, ranges), k)
    else:
        import faiss

        d_bits = quantize(d, "ubinary")  # the bits of "binary" too, as faiss's uint8 bytes
        index = faiss.IndexBinaryFlat(d_bits.shape[1] * 8)
        index.add(d_bits)
        ham, ids = index.search(quantize(q, "ubinary"), n_cand)
        scores = (index.d - 2 * ham).astype(np.float32)
        if rescore:  # unpackbits pads to whole bytes: trimmed to the dimension, as ST does
            scores, ids = rescore_candidates(
                q, ids, lambda i: np.unpackbits(d_bits[i], axis=-1)[..., :dim].astype(np.float32), k
            )
    scores, ids = pad_topk(np.where(ids >= 0, scores, -np.inf), ids, k)
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
    **options: Unpack[RankingKwargs],
) -> PrecisionEvaluation:
    """Retrieval metrics at one precision; with ``ignore_identical_ids`` one extra result is
    fetched, so dropping the query's own document still leaves max(ks)."""
    depth = max(ks) + (1 if options.get("ignore_identical_ids") else 0)
    res = search_with_precision(
        query_emb,
        doc_emb,
        depth,
        precision,
        calibration_embeddings=calibration_embeddings,
        rescore_multiplier=rescore_multiplier,
    )
    metrics = retrieval_metrics_from_ranked(query_ids, doc_ids, qrels, (res.scores, res.ids), ks, **options)
    return PrecisionEvaluation(precision, res.rescore_multiplier, res.bytes_per_vector, res.dim, metrics)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows as ST's ``normalize_embeddings=True`` computes them (torch ``F.normalize``),
    so int8 codes at bucket edges come out the same."""
    import torch

    return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(x)), p=2, dim=1).numpy()


def pair_similarity_inputs(emb1: Any, emb2: Any, precision: Precision) -> tuple[np.ndarray, np.ndarray, int]:
    """(side 1, side 2, bytes per vector) as ST's ``EmbeddingSimilarityEvaluator`` scores pairs at
    ``precision``: normalised, quantized with int8 ranges from both sides together (a sentence gets
    one code on either side), bits unpacked to {0, 1}, as float32 for the caller's cosine; no rescoring."""
    _check_precision(precision)
    a = as_numpy(emb1, np.float32)
    b = as_numpy(emb2, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"Pair embeddings must be two (N, D) arrays of one shape, got {a.shape} and {b.shape}"
        )
    size = bytes_per_vector(precision, a.shape[1])
    if precision == "float32":
        return a, b, size
    a, b = _unit_rows(a), _unit_rows(b)
    if precision in ("int8", "uint8"):
        ranges = quantization_ranges(np.concatenate([a, b]))
        codes = [quantize(x, precision, ranges=ranges) for x in (a, b)]
    else:  # unpackbits pads to whole bytes with zeros: trimmed, though zeros change no cosine
        codes = [np.unpackbits(quantize(x, "ubinary"), axis=1)[:, : a.shape[1]] for x in (a, b)]
    return codes[0].astype(np.float32), codes[1].astype(np.float32), size
