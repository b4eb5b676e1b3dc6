"""FAISS indexes behind one small factory, and a benchmark of their speed, size and recall.

An index is described by a frozen spec dataclass (one per kind), so a Hydra ``index/``
group maps onto it: ``index_spec(kind="hnsw", m=32)`` or ``HNSWSpec(m=32)``.

All float indexes use inner product. Embeddings are assumed L2-normalised, so inner
product is cosine similarity; :func:`build_index` logs a warning when they are not.
The binary index keeps only the sign bits (Hamming distance), then rescores the
``rescore_multiplier * k`` best candidates with the float inner product of the float
query and the float document vectors (kept beside the index and counted separately
in ``rescore_bytes``).

Memory is measured as the length of ``faiss.serialize_index`` (``serialize_index_binary``
for the binary index): what the index occupies on disk, which is close to its RAM
footprint and includes graph links, centroids and codebooks.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from embedlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf_flat", "ivf_pq", "sq8", "binary"]

# k-means in faiss wants about 39 training points per centroid; fewer gives poor
# centroids and a warning on stderr.
MIN_POINTS_PER_CENTROID = 39


@dataclass(frozen=True)
class FlatSpec:
    """Exact inner-product search (IndexFlatIP): the reference every other index is judged by."""

    kind: Literal["flat"] = "flat"


@dataclass(frozen=True)
class HNSWSpec:
    """Graph index (IndexHNSWFlat): no training, fast queries, stores float vectors plus links."""

    m: int = 32  # neighbours per node: recall and memory grow with it
    ef_construction: int = 200  # build-time beam width: better graph, slower build (faiss default 40)
    ef_search: int = 128  # query-time beam width: the recall/latency knob (faiss default 16)
    kind: Literal["hnsw"] = "hnsw"


@dataclass(frozen=True)
class IVFFlatSpec:
    """Inverted file with float vectors: k-means cells, search the ``nprobe`` nearest cells."""

    nlist: int = 1024  # cells; clamped to n_docs // 39 for small corpora
    nprobe: int = 16  # cells visited per query: the recall/latency knob
    kind: Literal["ivf_flat"] = "ivf_flat"


@dataclass(frozen=True)
class IVFPQSpec:
    """Inverted file with product-quantized residuals: m sub-vectors of nbits each per doc."""

    nlist: int = 1024
    m: int = 16  # sub-quantizers; must divide the dimension. Code size = m * nbits / 8 bytes
    nbits: int = 8  # bits per sub-quantizer code (256 centroids each)
    nprobe: int = 16
    # > 0: re-rank the k * this best PQ candidates by the exact inner product with the float
    # vectors (faiss IndexRefineFlat), kept beside the codes and counted in rescore_bytes.
    # PQ distances alone cap recall (0.41 recall@10 at 100k, m=16); re-ranking lifts the cap.
    rescore_multiplier: int = 0
    kind: Literal["ivf_pq"] = "ivf_pq"


@dataclass(frozen=True)
class SQ8Spec:
    """8-bit scalar quantizer (IndexScalarQuantizer QT_8bit): 1 byte per dimension, trained ranges."""

    kind: Literal["sq8"] = "sq8"


@dataclass(frozen=True)
class BinarySpec:
    """Sign bits in IndexBinaryFlat (Hamming), then float rescoring of the best candidates."""

    rescore_multiplier: int = 4  # rescore k * this candidates; 0 = Hamming ranking only
    kind: Literal["binary"] = "binary"


IndexSpec = FlatSpec | HNSWSpec | IVFFlatSpec | IVFPQSpec | SQ8Spec | BinarySpec

SPEC_CLASSES: dict[str, type] = {
    "flat": FlatSpec,
    "hnsw": HNSWSpec,
    "ivf_flat": IVFFlatSpec,
    "ivf_pq": IVFPQSpec,
    "sq8": SQ8Spec,
    "binary": BinarySpec,
}


def index_spec(kind: str, **params: Any) -> IndexSpec:
    """Build a spec from a kind name and its parameters (e.g. a Hydra ``index`` node)."""
    cls = SPEC_CLASSES.get(kind)
    if cls is None:
        raise ConfigError(f"Unknown index kind {kind!r}. Known: {sorted(SPEC_CLASSES)}.")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"Bad parameters for index kind {kind!r}: {exc}") from None


@dataclass
class BuiltIndex:
    """A built faiss index, the parameters actually used, and what rescoring needs."""

    spec: IndexSpec
    index: Any  # faiss.Index, or faiss.IndexBinary for kind="binary"
    n_docs: int
    dim: int
    params: dict[str, int] = field(default_factory=dict)  # effective values after clamping
    rescore_vectors: np.ndarray | None = field(default=None, repr=False)  # (N, d) float32, binary only

    def search(self, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(self, queries, k)

    @property
    def rescore_bytes(self) -> int:
        """Float vectors kept for re-ranking: the binary index's, or an IVF-PQ refine stage's."""
        if self.rescore_vectors is not None:
            return int(self.rescore_vectors.nbytes)
        return 4 * self.n_docs * self.dim if _is_refine(self.index) else 0


def _is_refine(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexRefine)


@dataclass(frozen=True)
class IndexBenchmark:
    """Build time, size, latency, throughput and recall against exact search of one index."""

    kind: str
    params: dict[str, int]
    n_docs: int
    dim: int
    k: int
    build_s: float
    index_bytes: int  # len(faiss.serialize_index(...))
    bytes_per_vector: float  # index_bytes / n_docs
    rescore_bytes: int  # float vectors kept for rescoring (binary; IVF-PQ with rescoring), else 0
    total_bytes: int  # index_bytes + rescore_bytes
    latency_ms_p50: float  # single query, faiss.omp_set_num_threads(1)
    latency_ms_p95: float
    latency_ms_p99: float
    n_latency_queries: int
    qps_batched: float  # all queries in one search call, with batch_threads threads
    batch_threads: int
    recall_at_k: float  # mean |approx top-k ∩ exact top-k| / k

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _float32(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n, dim), got shape {a.shape}")
    return a


def _warn_if_not_normalised(x: np.ndarray, what: str) -> None:
    norms = np.linalg.norm(x[: min(len(x), 1000)], axis=1)
    if norms.size and not np.allclose(norms, 1.0, atol=1e-3):
        log.warning(
            "%s are not unit-norm (norms %.3f..%.3f): inner product is then not cosine similarity",
            what,
            float(norms.min()),
            float(norms.max()),
        )


def _clamp_nlist(nlist: int, n_docs: int) -> int:
    ok = max(1, min(nlist, n_docs // MIN_POINTS_PER_CENTROID))
    if ok != nlist:
        log.warning(
            "nlist=%d is too many cells for %d documents (k-means wants >= %d points per cell); using nlist=%d",
            nlist,
            n_docs,
            MIN_POINTS_PER_CENTROID,
            ok,
        )
    return ok


def _packbits(x: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte, via sentence-transformers' ubinary quantization."""
    from sentence_transformers.util import quantize_embeddings

    return np.ascontiguousarray(quantize_embeddings(x, precision="ubinary"))


def build_index(spec: IndexSpec, doc_emb: Any) -> BuiltIndex:
    """Train (if needed) and fill the index described by ``spec`` with ``doc_emb`` (N, d)."""
    import faiss

    x = _float32(doc_emb, "doc embeddings")
    n, d = x.shape
    if n == 0:
        raise DataError("Empty corpus: cannot build an index without documents.")
    _warn_if_not_normalised(x, "Document embeddings")
    ip = faiss.METRIC_INNER_PRODUCT
    params: dict[str, int] = {}
    rescore = None

    if isinstance(spec, FlatSpec):
        index = faiss.IndexFlatIP(d)
    elif isinstance(spec, HNSWSpec):
        index = faiss.IndexHNSWFlat(d, spec.m, ip)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
        params = {"m": spec.m, "ef_construction": spec.ef_construction, "ef_search": spec.ef_search}
    elif isinstance(spec, IVFFlatSpec | IVFPQSpec):
        nlist = _clamp_nlist(spec.nlist, n)
        nprobe = min(spec.nprobe, nlist)
        if isinstance(spec, IVFFlatSpec):
            index = faiss.index_factory(d, f"IVF{nlist},Flat", ip)
            params = {"nlist": nlist, "nprobe": nprobe}
        else:
            if d % spec.m:
                raise ConfigError(
                    f"IVF-PQ needs m dividing the dimension; m={spec.m}, d={d}. Pick a divisor of {d}."
                )
            nbits = spec.nbits
            # each sub-quantizer trains 2**nbits centroids on n sub-vectors; faiss refuses
            # fewer points than centroids (and only warns between that and 39 per centroid)
            if 2**nbits > n:
                fitted = max(1, int(math.log2(n)))
                log.warning(
                    "nbits=%d needs >= %d documents to train; using nbits=%d", nbits, 2**nbits, fitted
                )
                nbits = fitted
            # "np": no polysemous training (a 15x slower build that only helps Hamming
            # pre-filtering, which inner-product search does not use)
            index = faiss.index_factory(d, f"IVF{nlist},PQ{spec.m}x{nbits}np", ip)
            params = {"nlist": nlist, "m": spec.m, "nbits": nbits, "nprobe": nprobe}
        index.train(x)
        if isinstance(spec, IVFPQSpec) and spec.rescore_multiplier > 0:
            index = faiss.IndexRefineFlat(index)  # adds go to both the codes and the float copy
            index.k_factor = float(spec.rescore_multiplier)
            params["rescore_multiplier"] = spec.rescore_multiplier
        faiss.extract_index_ivf(index).nprobe = nprobe
    elif isinstance(spec, SQ8Spec):
        index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, ip)
        index.train(x)
    elif isinstance(spec, BinarySpec):
        codes = _packbits(x)  # (N, ceil(d/8)); padding bits are 0 in docs and queries alike
        index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        index.add(codes)
        params = {"rescore_multiplier": spec.rescore_multiplier}
        if spec.rescore_multiplier > 0:
            rescore = x
        return BuiltIndex(spec, index, n, d, params, rescore)
    else:
        raise ConfigError(f"Unknown index spec {spec!r}")
    index.add(x)
    return BuiltIndex(spec, index, n, d, params, rescore)


def search(index: BuiltIndex | Any, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids), both (Q, k), best first; ids -1 where fewer than k exist.

    Accepts a :class:`BuiltIndex` or a bare float faiss index. Scores are inner products,
    except for the binary index without rescoring, where the score is
    ``n_bits - 2 * hamming`` (the dot product of the +-1 sign vectors).
    """
    q = _float32(queries, "queries")
    if not isinstance(index, BuiltIndex):
        scores, ids = index.search(q, k)
        return scores, ids.astype(np.int64, copy=False)
    if index.dim != q.shape[1]:
        raise ValueError(f"Query dimension {q.shape[1]} != index dimension {index.dim}")
    if not isinstance(index.spec, BinarySpec):
        scores, ids = index.index.search(q, k)
        return scores, ids.astype(np.int64, copy=False)

    n_bits = index.index.d
    codes = _packbits(q)
    mult = index.spec.rescore_multiplier
    n_cand = min(index.n_docs, k * max(1, mult))
    ham, cand = index.index.search(codes, n_cand)  # (Q, c) int32 distances, int64 ids
    if index.rescore_vectors is None:
        scores = (n_bits - 2 * ham).astype(np.float32)
        ids = cand
    else:
        from embedlab.eval.precision import rescore_candidates

        vecs = index.rescore_vectors
        scores, ids = rescore_candidates(q, cand, lambda i: vecs[i], k)
    out_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    out_i = np.full((len(q), k), -1, dtype=np.int64)
    w = min(k, scores.shape[1])
    out_s[:, :w], out_i[:, :w] = scores[:, :w], ids[:, :w]
    return out_s, out_i


def exact_search(doc_emb: Any, query_emb: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product in numpy (ties to the lowest doc index); the ground truth."""
    from embedlab.eval.retrieval import topk_dot

    return topk_dot(_float32(query_emb, "queries"), _float32(doc_emb, "doc embeddings"), k)


def index_bytes(index: BuiltIndex | Any) -> int:
    """Serialized size of the faiss index in bytes (excludes rescoring vectors, see
    ``BuiltIndex.rescore_bytes``)."""
    import faiss

    inner = index.index if isinstance(index, BuiltIndex) else index
    if _is_refine(inner):  # the codes only: the float copy counts as rescoring vectors
        inner = inner.base_index
    if isinstance(inner, faiss.IndexBinary):
        return int(len(faiss.serialize_index_binary(inner)))
    return int(len(faiss.serialize_index(inner)))


def recall_vs_exact(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean over queries of the fraction of exact top-k ids that the approximate top-k holds."""
    if approx_ids.shape[0] != exact_ids.shape[0]:
        raise ValueError("approx and exact results must have one row per query each")
    fractions = []
    for a, e in zip(approx_ids, exact_ids, strict=True):
        e = e[e >= 0]
        if len(e):
            fractions.append(len(set(a[a >= 0].tolist()) & set(e.tolist())) / len(e))
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
    """Build ``spec`` on ``doc_emb`` and measure it with ``query_emb``.

    - build_s: wall time of training plus adding.
    - memory: serialized index length (see module docstring), plus rescoring vectors.
    - latency: one query per search call, faiss limited to 1 thread (a serving process
      answering one request), first ``n_latency_queries`` queries after ``warmup``
      calls; the previous thread count is restored afterwards.
    - qps_batched: all queries in one call with faiss's current thread count, repeated
      until ``min_batch_seconds`` have passed.
    - recall_at_k: overlap with exact inner-product top-k on the same queries (computed
      here with numpy unless ``exact_ids`` is given).
    """
    import faiss

    docs = _float32(doc_emb, "doc embeddings")
    queries = _float32(query_emb, "queries")
    if len(queries) == 0:
        raise ValueError("benchmark_index needs at least one query")
    if isinstance(spec, BinarySpec):
        _packbits(docs[:1])  # import sentence-transformers now, not inside the timed build
    t0 = time.perf_counter()
    built = build_index(spec, docs)
    build_s = time.perf_counter() - t0

    ib = index_bytes(built)
    rb = built.rescore_bytes

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
    qps = n_done / elapsed

    if exact_ids is None:
        _, exact_ids = exact_search(docs, queries, k)
    recall = recall_vs_exact(ids, exact_ids)

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
        qps_batched=qps,
        batch_threads=threads,
        recall_at_k=recall,
    )
