"""FAISS indexes, one registered kind each, and their benchmark (build time, size, latency, recall).

A kind is one :func:`register_index` builder (its parameters' defaults, its tag) plus
``configs/index/<kind>.yaml``: the config mapping, the benchmark and the metric keys follow. Float kinds
use inner product on unit rows (cosine); ``binary`` ranks by Hamming distance, then rescores with float
vectors kept beside it. Size is ``len(faiss.serialize_index)``: on disk, close to RAM, links included.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedlab.console import progress
from embedlab.errors import ConfigError, DataError
from embedlab.eval.arrays import as_f32, pad_topk, rescore_candidates, topk_dot
from embedlab.eval.precision import quantize

log = logging.getLogger(__name__)

MIN_POINTS_PER_CENTROID = 39  # faiss k-means wants about 39 training points per centroid
ADD_CHUNK = 65_536  # rows per index.add call on a larger corpus: the build's progress steps


@dataclass(frozen=True)
class IndexSpec:
    """A registered kind and every one of its parameters (build them with :func:`index_spec`)."""

    kind: str
    params: dict[str, int] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        """The metric-key suffix (``ndcg@10@hnsw``): the kind, unless it registered its own tag."""
        tag = INDEX_KINDS[self.kind].tag
        return tag(self.params) if tag else self.kind


@dataclass
class BuiltIndex:
    """A built faiss index, the parameters actually used, and what rescoring needs."""

    spec: IndexSpec
    index: Any  # faiss.Index, or faiss.IndexBinary for kind="binary"
    n_docs: int
    dim: int
    params: dict[str, int] = field(default_factory=dict)  # the spec's, after clamping
    rescore_vectors: np.ndarray | None = field(default=None, repr=False)  # (N, d) float32, binary only
    build_s: float = 0.0  # training plus adding, set by build_index (a saved index: when it was built)
    cpu_index: Any = None  # the CPU original when ``index`` is its GPU copy (eval/index_store.py)

    @property
    def cpu(self) -> Any:
        """The CPU faiss index: ``index``, or the original of its GPU copy."""
        return self.index if self.cpu_index is None else self.cpu_index

    @property
    def rescore_bytes(self) -> int:
        """Float vectors kept for re-ranking: the binary index's, or an IVF-PQ refine stage's."""
        import faiss

        if self.rescore_vectors is not None:
            return int(self.rescore_vectors.nbytes)
        return 4 * self.n_docs * self.dim if isinstance(self.cpu, faiss.IndexRefine) else 0


Builder = Callable[[IndexSpec, np.ndarray], BuiltIndex]
Searcher = Callable[[BuiltIndex, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IndexKind:
    """A registered kind: its parameters' defaults, how to build it from unit-norm (N, d) float32
    docs, its tag if not its name, its search if the faiss index's own (higher is better) won't do,
    and whether faiss's GPU code can search it (``faiss.index_cpu_to_gpu``)."""

    defaults: dict[str, int]
    build: Builder
    search: Searcher | None = None
    tag: Callable[[dict[str, int]], str] | None = None
    gpu: bool = False


INDEX_KINDS: dict[str, IndexKind] = {}


def register_index(
    kind: str,
    *,
    search: Searcher | None = None,
    tag: Callable[[dict[str, int]], str] | None = None,
    gpu: bool = False,
    **defaults: int,
) -> Callable[[Builder], Builder]:
    """Decorator making the builder below it the one way to build ``kind`` (``defaults``: every parameter)."""

    def add(build: Builder) -> Builder:
        INDEX_KINDS[kind] = IndexKind(defaults, build, search, tag, gpu)
        return build

    return add


def index_spec(kind: str, **params: Any) -> IndexSpec:
    """The spec of ``kind`` (e.g. from a Hydra ``index`` node), parameters not given at their defaults."""
    entry = INDEX_KINDS.get(kind)
    if entry is None:
        raise ConfigError(f"Unknown index kind {kind!r}. Known: {sorted(INDEX_KINDS)}.")
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ConfigError(
            f"Bad parameters for index kind {kind!r}: {unknown}. It takes {sorted(entry.defaults)}."
        )
    return IndexSpec(kind, {**entry.defaults, **params})


def filled(spec: IndexSpec, index: Any, x: np.ndarray, **used: int) -> BuiltIndex:
    """``index`` trained (if needed) on and filled with ``x`` (N, d); ``used``: parameters the builder changed.
    A corpus over ``ADD_CHUNK`` rows is added in chunks, each a step of the progress bar."""
    if not index.is_trained:
        index.train(x)
    starts = range(0, len(x), ADD_CHUNK)
    for start in progress(starts, desc=f"build {spec.kind} index", unit="chunk", disable=len(starts) < 2):
        index.add(x[start : start + ADD_CHUNK])
    return BuiltIndex(spec, index, *x.shape, {**spec.params, **used})


@register_index("flat", gpu=True)
def _flat(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
    """Exact inner-product search (IndexFlatIP): the reference every other index is judged by."""
    import faiss

    return filled(spec, faiss.IndexFlatIP(x.shape[1]), x)


@register_index(
    "hnsw",
    m=32,  # neighbours per node: recall and memory grow with it
    ef_construction=200,  # build-time beam width: better graph, slower build (faiss default 40)
    ef_search=128,  # query-time beam width: the recall/latency knob (faiss default 16)
)
def _hnsw(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
    """Graph index (IndexHNSWFlat): no training, fast queries, stores float vectors plus links."""
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], spec.params["m"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = spec.params["ef_construction"]
    index.hnsw.efSearch = spec.params["ef_search"]
    return filled(spec, index, x)


@register_index("sq8")
def _sq8(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
    """8-bit scalar quantizer (IndexScalarQuantizer QT_8bit): 1 byte per dimension, trained ranges."""
    import faiss

    qt = faiss.ScalarQuantizer.QT_8bit
    return filled(spec, faiss.IndexScalarQuantizer(x.shape[1], qt, faiss.METRIC_INNER_PRODUCT), x)


@register_index(
    "ivf_flat", gpu=True, nlist=1024, nprobe=16
)  # nlist: k-means cells; nprobe: cells visited per query
@register_index(
    "ivf_pq",
    # re-ranked IVF-PQ's numbers differ from plain IVF-PQ's: its own cell (binary always rescores)
    tag=lambda p: f"ivf_pq+rescore{p['rescore_multiplier']}" if p["rescore_multiplier"] > 0 else "ivf_pq",
    gpu=True,  # not with rescoring: faiss has no GPU IndexRefine (index_store falls back to the CPU)
    nlist=1024,
    m=16,  # sub-quantizers; must divide the dimension. Code size = m * nbits / 8 bytes
    nbits=8,  # bits per sub-quantizer code (256 centroids each)
    nprobe=16,
    # > 0: re-rank k * this PQ candidates by exact inner product with float vectors (IndexRefineFlat),
    # counted in rescore_bytes. PQ distances alone cap recall (0.41 recall@10 at 100k, m=16).
    rescore_multiplier=0,
)
def _ivf(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
    """Inverted file over k-means cells, float vectors or PQ codes of the residuals; nlist clamped
    to the corpus (n_docs // 39) and nbits to what can be trained."""
    import faiss

    (n, d), p = x.shape, spec.params
    nlist = max(1, min(p["nlist"], n // MIN_POINTS_PER_CENTROID))
    if nlist != p["nlist"]:
        msg = "nlist=%d is too many cells for %d documents (k-means wants >= %d per cell); using nlist=%d"
        log.warning(msg, p["nlist"], n, MIN_POINTS_PER_CENTROID, nlist)
    used = {"nlist": nlist, "nprobe": min(p["nprobe"], nlist)}
    codes = "Flat"
    if spec.kind == "ivf_pq":
        if d % p["m"]:
            raise ConfigError(
                f"IVF-PQ needs m dividing the dimension; m={p['m']}, d={d}. Pick a divisor of {d}."
            )
        used["nbits"] = p["nbits"]
        # faiss refuses fewer training points than the 2**nbits centroids of each sub-quantizer
        if 2 ** p["nbits"] > n:
            used["nbits"] = max(1, int(math.log2(n)))
            log.warning(
                "nbits=%d needs >= %d documents to train; using nbits=%d",
                p["nbits"],
                2 ** p["nbits"],
                used["nbits"],
            )
        # "np": no polysemous training (15x slower build, only helps Hamming pre-filtering)
        codes = f"PQ{p['m']}x{used['nbits']}np"
    index = faiss.index_factory(d, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    if p.get("rescore_multiplier", 0) > 0:
        index = faiss.IndexRefineFlat(index)  # adds go to both the codes and the float copy
        index.k_factor = float(p["rescore_multiplier"])
    faiss.extract_index_ivf(index).nprobe = used["nprobe"]
    return filled(spec, index, x, **used)


def _binary_search(built: BuiltIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming top ``k * rescore_multiplier``, then exact inner product on the kept float vectors.
    Unrescored scores are ``n_bits - 2 * hamming`` (the dot product of the +-1 sign vectors)."""
    n_cand = min(built.n_docs, k * max(1, built.spec.params["rescore_multiplier"]))
    ham, ids = built.index.search(quantize(q, "ubinary"), n_cand)  # (Q, c) int32 distances, int64 ids
    scores = (built.index.d - 2 * ham).astype(np.float32)
    if built.rescore_vectors is not None:
        vecs = built.rescore_vectors
        scores, ids = rescore_candidates(q, ids, lambda i: vecs[i], k)
    return pad_topk(scores, ids, k)


@register_index("binary", search=_binary_search, rescore_multiplier=4)  # 0 = Hamming ranking only
def _binary(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
    """Sign bits in IndexBinaryFlat (Hamming), then float rescoring of the best candidates."""
    import faiss

    index = faiss.IndexBinaryFlat(math.ceil(x.shape[1] / 8) * 8)  # padding bits are 0 in docs and queries
    index.add(quantize(x, "ubinary"))
    rescore = x if spec.params["rescore_multiplier"] > 0 else None
    return BuiltIndex(spec, index, *x.shape, dict(spec.params), rescore)


def build_index(spec: IndexSpec, doc_emb: Any) -> BuiltIndex:
    """Train (if needed) and fill the index described by ``spec`` with ``doc_emb`` (N, d), timed."""
    x = as_f32(doc_emb, "doc embeddings")
    if len(x) == 0:
        raise DataError("Empty corpus: cannot build an index without documents.")
    norms = np.linalg.norm(x[:1000], axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        msg = "Document embeddings are not unit-norm (norms %.3f..%.3f): inner product is not cosine"
        log.warning(msg, norms.min(), norms.max())
    if spec.kind not in INDEX_KINDS:
        raise ConfigError(f"Unknown index spec {spec!r}. Known kinds: {sorted(INDEX_KINDS)}.")
    if spec.kind == "binary":
        quantize(x[:1], "ubinary")  # import sentence-transformers now, not inside the timed build
    t0 = time.perf_counter()
    built = INDEX_KINDS[spec.kind].build(spec, x)
    built.build_s = time.perf_counter() - t0
    return built


def search(index: BuiltIndex | Any, queries: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids), both (Q, k), best first, -1 padded, from a BuiltIndex (through its kind's
    searcher, if it registered one) or a bare float faiss index. Scores are inner products."""
    q = as_f32(queries, "queries")
    if isinstance(index, BuiltIndex):
        if index.dim != q.shape[1]:
            raise ValueError(f"Query dimension {q.shape[1]} != index dimension {index.dim}")
        custom = INDEX_KINDS[index.spec.kind].search
        if custom is not None:
            return custom(index, q, k)
        index = index.index
    scores, ids = index.search(q, k)
    return scores, ids.astype(np.int64, copy=False)


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


def index_bytes(index: BuiltIndex | Any) -> int:
    """Serialized size of the faiss index (without rescoring vectors: ``BuiltIndex.rescore_bytes``)."""
    import faiss

    inner = index.cpu if isinstance(index, BuiltIndex) else index
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
    index: IndexSpec | BuiltIndex,
    doc_emb: Any,
    query_emb: Any,
    k: int = 10,
    *,
    n_latency_queries: int = 200,
    warmup: int = 5,
    min_batch_seconds: float = 0.2,
    exact_ids: np.ndarray | None = None,
) -> IndexBenchmark:
    """Measure ``index`` (a spec is built on ``doc_emb`` first; pass the BuiltIndex to search it
    again afterwards, without a second build) with ``query_emb``. Latency: one query per call, faiss
    on 1 thread (restored after), after ``warmup`` calls. Batched qps: all queries per call, repeated
    for ``min_batch_seconds``. Recall: against exact top-k (``exact_ids``, else computed)."""
    import faiss

    docs, queries = as_f32(doc_emb, "doc embeddings"), as_f32(query_emb, "queries")
    if len(queries) == 0:
        raise ValueError("benchmark_index needs at least one query")
    built = index if isinstance(index, BuiltIndex) else build_index(index, docs)
    threads = faiss.omp_get_max_threads()
    lat_q = queries[: max(1, min(n_latency_queries, len(queries)))]
    times = []
    faiss.omp_set_num_threads(1)
    try:
        for i in [*range(min(warmup, len(lat_q))), *range(len(lat_q))]:  # warm-up calls, then timed ones
            t = time.perf_counter()
            search(built, lat_q[i : i + 1], k)
            times.append(time.perf_counter() - t)
    finally:
        faiss.omp_set_num_threads(threads)
    times = times[min(warmup, len(lat_q)) :]
    p50, p95, p99 = (float(v) * 1e3 for v in np.percentile(times, [50, 95, 99]))

    n_done, t_start = 0, time.perf_counter()
    while n_done == 0 or time.perf_counter() - t_start < min_batch_seconds:
        _, ids = search(built, queries, k)
        n_done += len(queries)
    elapsed = time.perf_counter() - t_start
    if exact_ids is None:
        exact_ids = topk_dot(queries, docs, k)[1]
    ib, rb = index_bytes(built), built.rescore_bytes
    return IndexBenchmark(
        kind=built.spec.kind,
        params=dict(built.params),
        n_docs=built.n_docs,
        dim=built.dim,
        k=k,
        build_s=built.build_s,
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
