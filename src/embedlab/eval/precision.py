"""Embedding precision as an evaluation-time axis: float32, int8/uint8 and binary/ubinary.

One float32 encode, quantized with sentence-transformers' ``quantize_embeddings`` (the codes a user
would store with ST). int8/uint8: queries and docs share per-dimension ranges (by default from the
documents); scores are exact integer dot products. binary/ubinary: the same sign bits, Hamming search in
faiss, score ``n_bits - 2 * hamming``. Rescoring follows ST's ``semantic_search_faiss``: ``k * rescore``
candidates re-ranked by the float32 query against the quantized docs (bits unpacked, codes dequantized).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from embedlab.eval.arrays import as_numpy, pad_topk, query_docs, rescore_candidates, topk_dot
from embedlab.eval.retrieval import DEFAULT_KS, Qrels, RetrievalMetrics, retrieval_metrics

log = logging.getLogger(__name__)

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "int8", "uint8", "binary", "ubinary")


@dataclass(frozen=True)
class PrecisionSearch:
    """Top-k results of one precision, (Q, k) best first and -1 padded; with metrics once scored."""

    precision: str
    scores: np.ndarray
    ids: np.ndarray
    rescore_multiplier: int
    bytes_per_vector: int
    metrics: RetrievalMetrics | None = None


def bytes_per_vector(precision: str, dim: int) -> int:
    """Storage of one embedding: 4*d (float32), d (int8/uint8), ceil(d/8) (binary); the int8
    calibration ranges (2 * d float32 per corpus) are not counted."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; known: {PRECISIONS}")
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
    x = codes.astype(np.float32) + (128 if precision == "int8" else 0)
    return x * np.where(steps == 0, 1, steps) + ranges[0]


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
    q, d = query_docs(query_emb, doc_emb)
    size = bytes_per_vector(precision, d.shape[1])
    if rescore_multiplier < 0:
        raise ValueError(f"rescore_multiplier must be >= 0, got {rescore_multiplier}")
    rescore = rescore_multiplier > 0 and precision != "float32"
    n_cand = min(len(d), k * rescore_multiplier) if rescore else k
    if precision == "float32":
        scores, ids = topk_dot(q, d, k, chunk_size=chunk_size)
    elif precision in ("int8", "uint8"):
        if calibration_embeddings is None:
            log.info("No calibration set given: %s ranges come from the %d documents", precision, len(d))
            calibration_embeddings = d
        ranges = quantization_ranges(calibration_embeddings)
        d_codes = quantize(d, precision, ranges=ranges)
        # integer dot products stay exact
        exact = np.float32 if 255 * 255 * d.shape[1] < 2**24 else np.float64
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
                q, ids, lambda i: np.unpackbits(d_bits[i], axis=-1)[..., : d.shape[1]].astype(np.float32), k
            )
    scores, ids = pad_topk(np.where(ids >= 0, scores, -np.inf), ids, k)
    return PrecisionSearch(precision, scores, ids, rescore_multiplier if rescore else 0, size)


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
    **options: Any,
) -> PrecisionSearch:
    """Retrieval metrics at one precision (in ``.metrics``); with ``ignore_identical_ids`` one extra
    result is fetched, so dropping the query's own document still leaves max(ks)."""
    depth = max(ks) + (1 if options.get("ignore_identical_ids") else 0)
    res = search_with_precision(
        query_emb,
        doc_emb,
        depth,
        precision,
        calibration_embeddings=calibration_embeddings,
        rescore_multiplier=rescore_multiplier,
    )
    metrics = retrieval_metrics(query_ids, doc_ids, qrels, ks=ks, ranked=(res.scores, res.ids), **options)
    return replace(res, metrics=metrics)


def pair_similarity_inputs(emb1: Any, emb2: Any, precision: Precision) -> tuple[np.ndarray, np.ndarray, int]:
    """(side 1, side 2, bytes per vector) as ST's ``EmbeddingSimilarityEvaluator`` scores pairs at
    ``precision``: normalised (torch, as ST, so codes at bucket edges agree), quantized with int8 ranges
    from both sides together, bits unpacked to {0, 1}, as float32 for the caller's cosine; no rescoring."""
    import torch

    a, b = as_numpy(emb1, np.float32), as_numpy(emb2, np.float32)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"Pair embeddings must be two (N, D) arrays of one shape, got {a.shape} and {b.shape}"
        )
    size = bytes_per_vector(precision, a.shape[1])
    if precision == "float32":
        return a, b, size
    a, b = (
        torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(x)), dim=1).numpy()
        for x in (a, b)
    )
    if precision in ("int8", "uint8"):
        ranges = quantization_ranges(np.concatenate([a, b]))
        codes = [quantize(x, precision, ranges=ranges) for x in (a, b)]
    else:  # unpackbits pads to whole bytes with zeros: trimmed, though zeros change no cosine
        codes = [np.unpackbits(quantize(x, "ubinary"), axis=1)[:, : a.shape[1]] for x in (a, b)]
    return codes[0].astype(np.float32), codes[1].astype(np.float32), size
