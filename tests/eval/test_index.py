"""FAISS index factory and benchmark on random unit vectors (5,000 x 64, 200 queries).

Random high-dimensional data is the hardest case for approximate search, so the recall
thresholds are per kind, set with a margin below what these parameters reach (measured
recall@10: flat 1.0, hnsw 0.998, ivf_flat 0.87, ivf_pq 0.52, sq8 0.98, binary with x10
rescoring 0.49 vs 0.14 on Hamming alone). HNSW builds in parallel and is not bitwise
deterministic across thread counts, hence its wider margin.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from embedlab.errors import ConfigError, DataError
from embedlab.eval.arrays import topk_dot
from embedlab.eval.index import (
    BuiltIndex,
    IndexSpec,
    benchmark_index,
    build_index,
    filled,
    index_spec,
    register_index,
    search,
)
from embedlab.eval.retrieval import retrieval_metrics

DIM = 64
K = 10


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """Small k-means jobs are slower with OpenMP spinning on a busy 2-core box."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    docs, queries = _unit(rng, 5000), _unit(rng, 200)
    _, exact_ids = topk_dot(queries, docs, K)  # exact top-k, ties to the lowest doc index
    return docs, queries, exact_ids


CASES = [
    (index_spec("flat"), 1.0),
    (index_spec("hnsw", m=16, ef_construction=100, ef_search=200), 0.95),
    (index_spec("ivf_flat", nlist=64, nprobe=32), 0.8),
    (index_spec("ivf_pq", nlist=64, m=16, nbits=8, nprobe=32), 0.35),
    (index_spec("sq8"), 0.9),
    (index_spec("binary", rescore_multiplier=10), 0.35),
]


@pytest.mark.parametrize(("spec", "min_recall"), CASES, ids=[c[0].kind for c in CASES])
def test_benchmark_each_kind(spec, min_recall: float, data) -> None:
    import faiss

    docs, queries, exact_ids = data
    threads = faiss.omp_get_max_threads()
    b = benchmark_index(
        spec, docs, queries, K, n_latency_queries=50, min_batch_seconds=0.01, exact_ids=exact_ids
    )
    assert faiss.omp_get_max_threads() == threads  # restored after the 1-thread latency loop
    assert b.recall_at_k >= min_recall, b
    assert 0 < b.latency_ms_p50 <= b.latency_ms_p95 <= b.latency_ms_p99
    assert b.qps_batched > 0 and b.build_s >= 0 and b.n_latency_queries == 50
    assert b.kind == spec.kind and b.n_docs == 5000 and b.dim == DIM
    assert b.bytes_per_vector == pytest.approx(b.index_bytes / 5000)
    assert b.total_bytes == b.index_bytes + b.rescore_bytes
    float_bytes = 4 * DIM
    expected = {
        "flat": (float_bytes, float_bytes * 1.01),  # codes + a small header
        "hnsw": (float_bytes, float_bytes + 16 * 2 * 4 * 2),  # + links (2m on level 0, 4 bytes each)
        "ivf_flat": (float_bytes, float_bytes * 1.1),  # + 8-byte ids + centroids
        "ivf_pq": (16, 16 + 8 + 20),  # m one-byte codes + 8-byte ids + codebooks
        "sq8": (DIM, DIM * 1.1),
        "binary": (DIM / 8, DIM / 8 + 0.1),
    }[spec.kind]
    assert expected[0] <= b.bytes_per_vector <= expected[1], b.bytes_per_vector
    if spec.kind == "binary":
        assert b.rescore_bytes == docs.nbytes


def test_thread_count_restored(data) -> None:
    import faiss

    docs, queries, exact_ids = data
    faiss.omp_set_num_threads(2)
    try:
        b = benchmark_index(
            index_spec("flat"),
            docs,
            queries,
            K,
            n_latency_queries=5,
            min_batch_seconds=0,
            exact_ids=exact_ids,
        )
        assert faiss.omp_get_max_threads() == 2 and b.batch_threads == 2
    finally:
        faiss.omp_set_num_threads(1)


def test_flat_equals_numpy_brute_force(data) -> None:
    docs, queries, _ = data
    built = build_index(index_spec("flat"), docs)
    scores, ids = search(built, queries, K)
    brute = queries @ docs.T
    order = np.argsort(-brute, axis=1, kind="stable")[:, :K]
    np.testing.assert_array_equal(ids, order)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, order, 1), rtol=0, atol=1e-5)
    # the bare faiss index goes through the same search()
    np.testing.assert_array_equal(search(built.index, queries, K)[1], ids)


def test_binary_rescoring_beats_hamming_and_scores_are_sign_dot(data) -> None:
    docs, queries, exact_ids = data
    plain = build_index(index_spec("binary", rescore_multiplier=0), docs)
    s, i = search(plain, queries[:5], K)
    signs_q, signs_d = np.where(queries[:5] > 0, 1, -1), np.where(docs > 0, 1, -1)
    np.testing.assert_array_equal(s, np.take_along_axis(signs_q @ signs_d.T, i, 1).astype(np.float32))
    b0 = benchmark_index(
        index_spec("binary", rescore_multiplier=0),
        docs,
        queries,
        K,
        n_latency_queries=5,
        exact_ids=exact_ids,
        min_batch_seconds=0,
    )
    b4 = benchmark_index(
        index_spec("binary", rescore_multiplier=4),
        docs,
        queries,
        K,
        n_latency_queries=5,
        exact_ids=exact_ids,
        min_batch_seconds=0,
    )
    assert b0.recall_at_k < b4.recall_at_k
    assert b0.rescore_bytes == 0


def test_ivf_pq_rescoring_returns_exact_scores_and_lifts_recall(data) -> None:
    """Re-ranked IVF-PQ: its scores are the exact inner products (compared with faiss'
    IndexFlatIP), recall rises with the re-ranking depth, and the float copy is counted."""
    import faiss

    docs, queries, exact_ids = data
    kw = dict(n_latency_queries=5, min_batch_seconds=0, exact_ids=exact_ids)
    plain = benchmark_index(index_spec("ivf_pq", nlist=64, m=16, nprobe=32), docs, queries, K, **kw)
    deep = benchmark_index(
        index_spec("ivf_pq", nlist=64, m=16, nprobe=32, rescore_multiplier=16), docs, queries, K, **kw
    )
    assert plain.recall_at_k < 0.7 < deep.recall_at_k, (plain.recall_at_k, deep.recall_at_k)
    assert plain.rescore_bytes == 0 and deep.rescore_bytes == docs.nbytes
    assert deep.index_bytes == plain.index_bytes  # the codes: the same PQ index underneath
    assert deep.params["rescore_multiplier"] == 16 and deep.params["nprobe"] == 32

    built = build_index(index_spec("ivf_pq", nlist=64, m=16, nprobe=32, rescore_multiplier=16), docs)
    scores, ids = search(built, queries, K)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(docs)
    exact_scores, _ = flat.search(queries, K)
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", queries, docs[ids]), atol=1e-5)
    assert (scores <= exact_scores[:, :1] + 1e-5).all()  # never above the true best match
    hit = ids[:, 0] == exact_ids[:, 0]
    np.testing.assert_allclose(scores[hit, 0], exact_scores[hit, 0], atol=1e-5)


def test_metrics_from_any_index(data) -> None:
    docs, queries, _ = data
    rng = np.random.default_rng(1)
    qids, dids = [f"q{i}" for i in range(len(queries))], [f"d{i}" for i in range(len(docs))]
    qrels = {q: {dids[j]: 1 for j in rng.choice(len(docs), 3, replace=False)} for q in qids}
    built = build_index(index_spec("flat"), docs)
    via_index = retrieval_metrics(qids, dids, qrels, ks=(1, 10, 100), ranked=search(built, queries, 100))
    exact = retrieval_metrics(qids, dids, qrels, ks=(1, 10, 100), query_emb=queries, doc_emb=docs)
    assert via_index.metrics == pytest.approx(exact.metrics)


def test_small_corpus_clamps_ivf(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(2)
    docs = _unit(rng, 300)
    caplog.set_level(logging.WARNING)
    built = build_index(index_spec("ivf_pq", nlist=1024, m=8, nbits=10, nprobe=64), docs)
    assert built.params["nlist"] == 300 // 39 and built.params["nprobe"] == built.params["nlist"]
    assert built.params["nbits"] == 8  # 2**10 centroids cannot be trained on 300 points
    assert "nlist=1024" in caplog.text and "nbits=10" in caplog.text
    _, ids = search(built, docs[:3], 5)
    assert ids.shape == (3, 5)
    # a tiny corpus: fewer docs than k pads with -1
    tiny = build_index(index_spec("binary"), docs[:3])
    s, i = search(tiny, docs[:2], 5)
    assert (i[:, 3:] == -1).all() and np.isinf(s[:, 3:]).all()


def test_spec_factory_and_errors() -> None:
    assert index_spec("hnsw", m=8) == IndexSpec("hnsw", {"m": 8, "ef_construction": 200, "ef_search": 128})
    assert index_spec("ivf_pq", nlist=4, m=8).kind == "ivf_pq"
    with pytest.raises(ConfigError, match="Unknown index kind"):
        index_spec("annoy")
    with pytest.raises(ConfigError, match="Bad parameters"):
        index_spec("flat", m=3)
    rng = np.random.default_rng(3)
    with pytest.raises(ConfigError, match="m dividing"):
        build_index(index_spec("ivf_pq", nlist=2, m=7), _unit(rng, 200))
    with pytest.raises(DataError, match="Empty corpus"):
        build_index(index_spec("flat"), np.zeros((0, DIM), np.float32))


def test_warns_when_not_normalised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    build_index(index_spec("flat"), 3 * _unit(np.random.default_rng(4), 20))
    assert "not unit-norm" in caplog.text


def test_index_tag_names_reranked_ivf_pq_apart() -> None:
    from embedlab.eval.variants import index_tag

    assert index_tag("ivf_pq", {"nprobe": 16, "rescore_multiplier": 0}) == "ivf_pq"
    assert index_tag("ivf_pq", {"rescore_multiplier": 32}) == "ivf_pq+rescore32"
    assert index_tag("binary", {"rescore_multiplier": 4}) == "binary"  # binary always rescores
    assert index_tag("hnsw") == "hnsw"


def test_a_new_index_kind_is_one_registered_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind is one registered builder (and, for configs, configs/index/<kind>.yaml):
    the config mapping, build, search, the tag and the retrieval metric keys all follow from it."""
    import faiss

    from embedlab.data.retrieval import RetrievalSet
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.eval import index as index_module
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval
    from embedlab.eval.variants import index_tag

    monkeypatch.setattr(index_module, "INDEX_KINDS", dict(index_module.INDEX_KINDS))  # this test only

    # a toy kind: product quantization without IVF (faiss IndexPQ), its tag naming its code size
    @register_index("pq", tag=lambda p: f"pq{p['m']}x{p['nbits']}", m=8, nbits=4)
    def _pq(spec: IndexSpec, x: np.ndarray) -> BuiltIndex:
        m, nbits = spec.params["m"], spec.params["nbits"]
        return filled(spec, faiss.IndexPQ(x.shape[1], m, nbits, faiss.METRIC_INNER_PRODUCT), x)

    spec = index_spec("pq", m=8)  # what config/specs.py does with an `index: {kind: pq, params: {m: 8}}` node
    assert spec == IndexSpec("pq", {"m": 8, "nbits": 4}) and index_tag("pq", {"m": 8, "nbits": 4}) == "pq8x4"

    rng = np.random.default_rng(5)
    docs = _unit(rng, 700)
    near = docs[:60] + 0.3 * rng.standard_normal((60, DIM)).astype(np.float32) / np.sqrt(DIM)
    vectors = {f"doc {i}": v for i, v in enumerate(docs)} | {f"query {i}": v for i, v in enumerate(near)}

    class _Encoder:  # the evaluation only asks an Encoder for (cached) embeddings, and its cache
        cache = EmbeddingCache(None)

        def encode_cached(self, texts: list[str], *, what: str = "texts") -> tuple[np.ndarray, None]:
            return np.stack([vectors[t] for t in texts]), None

    data = RetrievalSet(
        name="toy",
        corpus={f"d{i}": f"doc {i}" for i in range(len(docs))},
        queries={f"q{i}": f"query {i}" for i in range(len(near))},
        qrels={f"q{i}": {f"d{i}": 1} for i in range(len(near))},
        answers=None,
        revision="toy",
    )
    settings = RetrievalEvalSettings(ks=(1, 10), index=spec, n_latency_queries=5)
    result = evaluate_retrieval(_Encoder(), data, settings)  # type: ignore[arg-type]
    assert [c.tag for c in result.cells] == ["", "@pq8x4"]
    m = result.metrics
    assert {"ndcg@10@pq8x4", "index_recall@10@pq8x4", "index_total_mb@pq8x4"} <= m.keys()
    assert m["ndcg@10"] > 0.95 and 0.2 < m["ndcg@10@pq8x4"] <= m["ndcg@10"]
    assert result.details["index@pq8x4"]["kind"] == "pq"
