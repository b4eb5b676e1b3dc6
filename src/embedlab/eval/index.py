"""FAISS indexes, one registered kind each: a frozen spec (as the Hydra ``index/`` group) and its builder.
A new kind is one :func:`register_index` entry plus ``configs/index/<kind>.yaml``: the config mapping,
the tag, the benchmark (``eval/index_benchmark.py``) and the metric keys follow.

Float indexes use inner product on unit-norm embeddings (cosine). Binary ranks by Hamming distance,
then rescores candidates with float vectors kept beside it (``BuiltIndex.rescore_bytes``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from embedlab.errors import ConfigError, DataError
from embedlab.eval.arrays import as_f32
from embedlab.eval.precision import quantize
from embedlab.eval.topk import pad_topk, rescore_candidates

log = logging.getLogger(__name__)

# k-means in faiss wants about 39 training points per centroid; fewer gives poor centroids
MIN_POINTS_PER_CENTROID = 39


class IndexSpec:
    """Base of each kind's frozen spec dataclass: every field has a default, the last is ``kind``
    (the yaml's ``kind:``). ``tag`` is the kind's metric-key suffix (``ndcg@10@hnsw``)."""

    kind: str

    @property
    def tag(self) -> str:
        return self.kind


@dataclass(frozen=True)
class FlatSpec(IndexSpec):
    """Exact inner-product search (IndexFlatIP): the reference every other index is judged by."""

    kind: Literal["flat"] = "flat"


@dataclass(frozen=True)
class HNSWSpec(IndexSpec):
    """Graph index (IndexHNSWFlat): no training, fast queries, stores float vectors plus links."""

    m: int = 32  # neighbours per node: recall and memory grow with it
    ef_construction: int = 200  # build-time beam width: better graph, slower build (faiss default 40)
    ef_search: int = 128  # query-time beam width: the recall/latency knob (faiss default 16)
    kind: Literal["hnsw"] = "hnsw"


@dataclass(frozen=True)
class IVFFlatSpec(IndexSpec):
    """Inverted file with float vectors: k-means cells, search the ``nprobe`` nearest cells."""

    nlist: int = 1024  # cells; clamped to n_docs // 39 for small corpora
    nprobe: int = 16  # cells visited per query: the recall/latency knob
    kind: Literal["ivf_flat"] = "ivf_flat"


@dataclass(frozen=True)
class IVFPQSpec(IndexSpec):
    """Inverted file with product-quantized residuals: m sub-vectors of nbits each per doc."""

    nlist: int = 1024
    m: int = 16  # sub-quantizers; must divide the dimension. Code size = m * nbits / 8 bytes
    nbits: int = 8  # bits per sub-quantizer code (256 centroids each)
    nprobe: int = 16
    # > 0: re-rank k * this PQ candidates by exact inner product with float vectors (IndexRefineFlat),
    # counted in rescore_bytes. PQ distances alone cap recall (0.41 recall@10 at 100k, m=16).
    rescore_multiplier: int = 0
    kind: Literal["ivf_pq"] = "ivf_pq"

    @property
    def tag(self) -> str:
        """Re-ranked IVF-PQ's numbers differ from plain IVF-PQ's: its own cell (binary always rescores)."""
        return f"ivf_pq+rescore{self.rescore_multiplier}" if self.rescore_multiplier > 0 else "ivf_pq"


@dataclass(frozen=True)
class SQ8Spec(IndexSpec):
    """8-bit scalar quantizer (IndexScalarQuantizer QT_8bit): 1 byte per dimension, trained ranges."""

    kind: Literal["sq8"] = "sq8"


@dataclass(frozen=True)
class BinarySpec(IndexSpec):
    """Sign bits in IndexBinaryFlat (Hamming), then float rescoring of the best candidates."""

    rescore_multiplier: int = 4  # rescore k * this candidates; 0 = Hamming ranking only
    kind: Literal["binary"] = "binary"


@dataclass
class BuiltIndex:
    """A built faiss index, the parameters actually used, and what rescoring needs."""

    spec: IndexSpec
    index: Any  # faiss.Index, or faiss.IndexBinary for kind="binary"
    n_docs: int
    dim: int
    params: dict[str, int] = field(default_factory=dict)  # effective values after clamping
    rescore_vectors: np.ndarray | None = field(default=None, repr=False)  # (N, d) float32, binary only

    @property
    def rescore_bytes(self) -> int:
        """Float vectors kept for re-ranking: the binary index's, or an IVF-PQ refine stage's."""
        if self.rescore_vectors is not None:
            return int(self.rescore_vectors.nbytes)
        return 4 * self.n_docs * self.dim if _is_refine(self.index) else 0


def _is_refine(index: Any) -> bool:
    import faiss

    return isinstance(index, faiss.IndexRefine)


Builder = Callable[[Any, np.ndarray], BuiltIndex]
Searcher = Callable[[BuiltIndex, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IndexKind:
    """One registered kind: its spec class, how to build it from unit-norm docs (N, d) float32, and
    how to search it when the faiss index's own ``search`` (scores: higher is better) will not do."""

    spec: type[IndexSpec]
    build: Builder
    search: Searcher | None = None


INDEX_KINDS: dict[str, IndexKind] = {}


def register_index(spec: type[IndexSpec], search: Searcher | None = None) -> Callable[[Builder], Builder]:
    """Decorator making the builder below it the one way to build ``spec().kind``."""

    def add(build: Builder) -> Builder:
        INDEX_KINDS[spec().kind] = IndexKind(spec, build, search)
        return build

    return add


def index_spec(kind: str, **params: Any) -> IndexSpec:
    """Build a spec from a kind name and its parameters (e.g. a Hydra ``index`` node)."""
    entry = INDEX_KINDS.get(kind)
    if entry is None:
        raise ConfigError(f"Unknown index kind {kind!r}. Known: {sorted(INDEX_KINDS)}.")
    try:
        return entry.spec(**params)
    except TypeError as exc:
        raise ConfigError(f"Bad parameters for index kind {kind!r}: {exc}") from None


def filled(spec: IndexSpec, index: Any, x: np.ndarray, params: dict[str, int] | None = None) -> BuiltIndex:
    """``index`` trained (if it needs it) on and filled with ``x`` (N, d): what a float builder returns."""
    if not index.is_trained:
        index.train(x)
    index.add(x)
    return BuiltIndex(spec, index, *x.shape, params or {})


@register_index(FlatSpec)
def _flat(spec: FlatSpec, x: np.ndarray) -> BuiltIndex:
    import faiss

    return filled(spec, faiss.IndexFlatIP(x.shape[1]), x)


@register_index(HNSWSpec)
def _hnsw(spec: HNSWSpec, x: np.ndarray) -> BuiltIndex:
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], spec.m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = spec.ef_construction
    index.hnsw.efSearch = spec.ef_search
    params = {"m": spec.m, "ef_construction": spec.ef_construction, "ef_search": spec.ef_search}
    return filled(spec, index, x, params)


@register_index(SQ8Spec)
def _sq8(spec: SQ8Spec, x: np.ndarray) -> BuiltIndex:
    import faiss

    qt = faiss.ScalarQuantizer.QT_8bit
    return filled(spec, faiss.IndexScalarQuantizer(x.shape[1], qt, faiss.METRIC_INNER_PRODUCT), x)


@register_index(IVFFlatSpec)
@register_index(IVFPQSpec)
def _ivf(spec: IVFFlatSpec | IVFPQSpec, x: np.ndarray) -> BuiltIndex:
    """An IVF index, nlist clamped to the corpus and nbits to what can be trained."""
    import faiss

    n, d = x.shape
    nlist = max(1, min(spec.nlist, n // MIN_POINTS_PER_CENTROID))
    if nlist != spec.nlist:
        msg = "nlist=%d is too many cells for %d documents (k-means wants >= %d per cell); using nlist=%d"
        log.warning(msg, spec.nlist, n, MIN_POINTS_PER_CENTROID, nlist)
    params = {"nlist": nlist, "nprobe": min(spec.nprobe, nlist)}
    if isinstance(spec, IVFFlatSpec):
        index = faiss.index_factory(d, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
    else:
        if d % spec.m:
            raise ConfigError(
                f"IVF-PQ needs m dividing the dimension; m={spec.m}, d={d}. Pick a divisor of {d}."
            )
        nbits = spec.nbits
        # faiss refuses fewer training points than the 2**nbits centroids of each sub-quantizer
        if 2**nbits > n:
            nbits = max(1, int(math.log2(n)))
            log.warning(
                "nbits=%d needs >= %d documents to train; using nbits=%d", spec.nbits, 2**spec.nbits, nbits
            )
        # "np": no polysemous training (15x slower build, only helps Hamming pre-filtering)
        index = faiss.index_factory(d, f"IVF{nlist},PQ{spec.m}x{nbits}np", faiss.METRIC_INNER_PRODUCT)
        params = {"nlist": nlist, "m": spec.m, "nbits": nbits, "nprobe": params["nprobe"]}
    index.train(x)
    if isinstance(spec, IVFPQSpec) and spec.rescore_multiplier > 0:
        index = faiss.IndexRefineFlat(index)  # adds go to both the codes and the float copy
        index.k_factor = float(spec.rescore_multiplier)
        params["rescore_multiplier"] = spec.rescore_multiplier
    faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    return filled(spec, index, x, params)


def _binary_search(built: BuiltIndex, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Hamming top ``k * rescore_multiplier``, then exact inner product on the kept float vectors.
    Unrescored scores are ``n_bits - 2 * hamming`` (the dot product of the +-1 sign vectors)."""
    n_cand = min(built.n_docs, k * max(1, built.spec.rescore_multiplier))  # type: ignore[attr-defined]
    ham, ids = built.index.search(quantize(q, "ubinary"), n_cand)  # (Q, c) int32 distances, int64 ids
    scores = (built.index.d - 2 * ham).astype(np.float32)
    if built.rescore_vectors is not None:
        vecs = built.rescore_vectors
        scores, ids = rescore_candidates(q, ids, lambda i: vecs[i], k)
    return pad_topk(scores, ids, k)


@register_index(BinarySpec, search=_binary_search)
def _binary(spec: BinarySpec, x: np.ndarray) -> BuiltIndex:
    import faiss

    index = faiss.IndexBinaryFlat(math.ceil(x.shape[1] / 8) * 8)  # padding bits are 0 in docs and queries
    index.add(quantize(x, "ubinary"))
    rescore = x if spec.rescore_multiplier > 0 else None
    return BuiltIndex(spec, index, *x.shape, {"rescore_multiplier": spec.rescore_multiplier}, rescore)


def build_index(spec: IndexSpec, doc_emb: Any) -> BuiltIndex:
    """Train (if needed) and fill the index described by ``spec`` with ``doc_emb`` (N, d)."""
    x = as_f32(doc_emb, "doc embeddings")
    if len(x) == 0:
        raise DataError("Empty corpus: cannot build an index without documents.")
    norms = np.linalg.norm(x[:1000], axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        msg = "Document embeddings are not unit-norm (norms %.3f..%.3f): inner product is not cosine"
        log.warning(msg, norms.min(), norms.max())
    entry = INDEX_KINDS.get(spec.kind)
    if entry is None or not isinstance(spec, entry.spec):
        raise ConfigError(f"Unknown index spec {spec!r}. Known kinds: {sorted(INDEX_KINDS)}.")
    return entry.build(spec, x)


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
