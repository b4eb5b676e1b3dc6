"""How fast, big and accurate an index of ``eval/index.py`` is: build time, serialized size, single-query
latency percentiles, batched throughput and recall against exact search, for any registered kind.
Size is ``len(faiss.serialize_index)``: on-disk size, close to RAM, links, centroids and codebooks included.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedlab.eval.arrays import as_f32
from embedlab.eval.index import BinarySpec, BuiltIndex, IndexSpec, build_index, search
from embedlab.eval.precision import quantize
from embedlab.eval.topk import topk_dot


@dataclass(frozen=True)
class IndexBenchmark:
    """Build time, size, latency, throughput and recall against exact search of one index."""

    kind: str
    params: dict[str, int]
    n_docs: int
    dim: int
    k: int
    build_s: float  # training plus adding
    index_bytes: int  # len(faiss.serialize_index(...))
    bytes_per_vector: float  # index_bytes / n_docs
    rescore_bytes: int  # float vectors kept for rescoring (binary; IVF-PQ with rescoring), else 0
    total_bytes: int  # index_bytes + rescore_bytes
    latency_ms_p50: float  # single query, faiss.omp_set_num_threads(1): a serving process
    latency_ms_p95: float
    latency_ms_p99: float
    n_latency_queries: int
    qps_batched: float  # all queries in one search call, with batch_threads threads
    batch_threads: int
    recall_at_k: float  # mean |approx top-k ∩ exact top-k| / k

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def exact_search(doc_emb: Any, query_emb: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product in numpy (ties to the lowest doc index); the ground truth."""
    return topk_dot(as_f32(query_emb, "queries"), as_f32(doc_emb, "doc embeddings"), k)


def index_bytes(index: BuiltIndex | Any) -> int:
    """Serialized size of the faiss index (without rescoring vectors: ``BuiltIndex.rescore_bytes``)."""
    import faiss

    inner = index.index if isinstance(index, BuiltIndex) else index
    if isinstance(inner, faiss.IndexRefine):  # the codes only: the float copy counts as rescoring vectors
        inner = inner.base_index
    binary = isinstance(inner, faiss.IndexBinary)
    return len(faiss.serialize_index_binary(inner) if binary else faiss.serialize_index(inner))


def recall_vs_exact(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of the fraction of exact top-k ids that the approximate top-k holds."""
    if approx_ids.shape[0] != exact_ids.shape[0]:
        raise ValueError("approx and exact results must have one row per query each")
    fractions = [
        len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) / (e >= 0).sum()
        for a, e in zip(approx_ids, exact_ids, strict=True)
        if (e >= 0).any()
    ]
    return float(np.mean(fractions)) if fractions else float("nan")


def benchmark_index(
    spec: IndexSpec,
    doc_emb: Any,
    query_emb: Any,
    k: int = 10,
    *,
    n_latency_queries: int = 200,
    warmup: int = 5,
    min_batch_seconds: float = 0.2,
    exact_ids: np.ndarray | None = None,
) -> IndexBenchmark:
    """Build ``spec`` on ``doc_emb`` and measure it with ``query_emb`` (see :class:`IndexBenchmark`).

    Latency: one query per call, faiss on 1 thread (restored after), the first ``n_latency_queries``
    after ``warmup`` calls. Batched qps: all queries per call, repeated for ``min_batch_seconds``.
    Recall: against exact top-k (``exact_ids``, else computed here).
    """
    import faiss

    docs = as_f32(doc_emb, "doc embeddings")
    queries = as_f32(query_emb, "queries")
    if len(queries) == 0:
        raise ValueError("benchmark_index needs at least one query")
    if isinstance(spec, BinarySpec):
        quantize(docs[:1], "ubinary")  # import sentence-transformers now, not inside the timed build
    t0 = time.perf_counter()
    built = build_index(spec, docs)
    build_s = time.perf_counter() - t0

    threads = faiss.omp_get_max_threads()
    lat_q = queries[: max(1, min(n_latency_queries, len(queries)))]
    times = []
    faiss.omp_set_num_threads(1)
    try:
        for i in range(min(warmup, len(lat_q))):
            search(built, lat_q[i : i + 1], k)
        for i in range(len(lat_q)):
            t = time.perf_counter()
            search(built, lat_q[i : i + 1], k)
            times.append(time.perf_counter() - t)
    finally:
        faiss.omp_set_num_threads(threads)
    p50, p95, p99 = (float(v) * 1e3 for v in np.percentile(times, [50, 95, 99]))

    n_done, t_start = 0, time.perf_counter()
    while True:
        _, ids = search(built, queries, k)
        n_done += len(queries)
        elapsed = time.perf_counter() - t_start
        if elapsed >= min_batch_seconds:
            break
    if exact_ids is None:
        _, exact_ids = exact_search(docs, queries, k)
    ib, rb = index_bytes(built), built.rescore_bytes
    return IndexBenchmark(
        kind=spec.kind,
        params=dict(built.params),
        n_docs=built.n_docs,
        dim=built.dim,
        k=k,
        build_s=build_s,
        index_bytes=ib,
        bytes_per_vector=ib / built.n_docs,
        rescore_bytes=rb,
        total_bytes=ib + rb,
        latency_ms_p50=p50,
        latency_ms_p95=p95,
        latency_ms_p99=p99,
        n_latency_queries=len(times),
        qps_batched=n_done / elapsed,
        batch_threads=threads,
        recall_at_k=recall_vs_exact(ids, exact_ids),
    )
