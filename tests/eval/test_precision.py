"""Embedding precision: storage, agreement with sentence-transformers, and rescoring gains."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.eval.arrays import topk_dot
from embedlab.eval.precision import (
    PRECISIONS,
    bytes_per_vector,
    dequantize,
    evaluate_precision,
    quantization_ranges,
    quantize,
    search_with_precision,
)

DIM = 64


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((2000, DIM)).astype(np.float32)
    queries = docs[:100] + 0.6 * rng.standard_normal((100, DIM)).astype(np.float32)  # near docs 0..99
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries, docs


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b, strict=True)]))


def test_bytes_per_vector() -> None:
    assert [bytes_per_vector(p, 384) for p in PRECISIONS] == [1536, 384, 384, 48, 48]
    assert bytes_per_vector("binary", 12) == 2  # packbits pads to whole bytes
    with pytest.raises(ValueError):
        bytes_per_vector("fp8", 8)


def test_quantization_is_sentence_transformers(data) -> None:
    from sentence_transformers.util import quantize_embeddings

    queries, docs = data
    ranges = quantization_ranges(docs)
    for precision in PRECISIONS:
        ours = (
            quantize(queries, precision, ranges=ranges)
            if "int8" in precision
            else quantize(queries, precision)
        )
        st = quantize_embeddings(queries, precision=precision, calibration_embeddings=docs)
        np.testing.assert_array_equal(ours, st)
        assert ours.shape[1] * ours.itemsize == bytes_per_vector(precision, DIM)
    with pytest.raises(ValueError, match="ranges"):
        quantize(queries, "int8")


def test_dequantize_matches_sentence_transformers(data) -> None:
    st_quant = pytest.importorskip("sentence_transformers.util.quantization")
    if not hasattr(st_quant, "_dequantize_embeddings"):
        pytest.skip("this sentence-transformers version has no _dequantize_embeddings")
    queries, docs = data
    ranges = quantization_ranges(docs)
    for precision in ("int8", "uint8"):
        codes = quantize(queries, precision, ranges=ranges)
        np.testing.assert_allclose(
            dequantize(codes, precision, ranges),
            st_quant._dequantize_embeddings(codes, precision, ranges),
            atol=1e-6,
        )


def test_scores_are_exact_per_precision(data) -> None:
    queries, docs = data
    f32 = search_with_precision(queries, docs, 10, "float32")
    s, i = topk_dot(queries, docs, 10)
    np.testing.assert_array_equal(f32.ids, i)
    assert f32.bytes_per_vector == 4 * DIM

    res = search_with_precision(queries, docs, 10, "int8", calibration_embeddings=docs)
    ranges = quantization_ranges(docs)
    q8 = quantize(queries, "int8", ranges=ranges).astype(np.int64)
    d8 = quantize(docs, "int8", ranges=ranges).astype(np.int64)
    exact_int = np.take_along_axis(q8 @ d8.T, res.ids, 1)
    np.testing.assert_array_equal(res.scores, exact_int.astype(np.float32))
    assert (np.diff(res.scores, axis=1) <= 0).all() and res.bytes_per_vector == DIM

    for precision in ("binary", "ubinary"):
        b = search_with_precision(queries, docs, 10, precision)
        signs = np.where(queries > 0, 1, -1) @ np.where(docs > 0, 1, -1).T  # = DIM - 2 * hamming
        np.testing.assert_array_equal(b.scores, np.take_along_axis(signs, b.ids, 1).astype(np.float32))
        assert b.scores[:, 0].tolist() == signs.max(axis=1).tolist()
        assert b.bytes_per_vector == DIM // 8


def test_binary_rescoring_matches_st_and_improves(data) -> None:
    from sentence_transformers.util import quantize_embeddings
    from sentence_transformers.util.quantization import semantic_search_faiss

    queries, docs = data
    _, exact = topk_dot(queries, docs, 10)
    plain = search_with_precision(queries, docs, 10, "ubinary")
    rescored = search_with_precision(queries, docs, 10, "ubinary", rescore_multiplier=4)
    assert rescored.rescore_multiplier == 4
    assert _overlap(rescored.ids, exact) > _overlap(plain.ids, exact) + 0.1

    st, _ = semantic_search_faiss(
        queries,
        corpus_embeddings=quantize_embeddings(docs, precision="ubinary"),
        corpus_precision="ubinary",
        top_k=10,
        rescore=True,
        rescore_multiplier=4,
    )
    st_ids = np.array([[hit["corpus_id"] for hit in hits] for hits in st])
    st_scores = np.array([[hit["score"] for hit in hits] for hits in st])
    np.testing.assert_array_equal(rescored.ids, st_ids)
    np.testing.assert_allclose(rescored.scores, st_scores, rtol=1e-5)

    # "binary" (int8 storage) holds the same bits
    assert (
        search_with_precision(queries, docs, 10, "binary", rescore_multiplier=4).ids == rescored.ids
    ).all()


def test_uint8_rescoring_close_to_st(data) -> None:
    from sentence_transformers.util import quantize_embeddings
    from sentence_transformers.util.quantization import semantic_search_faiss

    queries, docs = data
    ours = search_with_precision(
        queries, docs, 10, "uint8", calibration_embeddings=docs, rescore_multiplier=4
    )
    st, _ = semantic_search_faiss(
        queries,
        corpus_embeddings=quantize_embeddings(docs, precision="uint8", calibration_embeddings=docs),
        corpus_precision="uint8",
        top_k=10,
        calibration_embeddings=docs,
        rescore=True,
        rescore_multiplier=4,
    )
    st_ids = np.array([[hit["corpus_id"] for hit in hits] for hits in st])
    # integer code scores tie often; faiss and we may break a tie at the candidate cut differently
    assert _overlap(ours.ids, st_ids) >= 0.98


def test_evaluate_precision_orders_as_expected(data) -> None:
    queries, docs = data
    qids = [f"q{i}" for i in range(len(queries))]
    dids = [f"d{i}" for i in range(len(docs))]
    qrels = {q: {dids[i]: 1} for i, q in enumerate(qids)}  # query i was made from doc i
    ks = (1, 10)
    res = {
        (p, m): evaluate_precision(qids, dids, qrels, queries, docs, p, ks, rescore_multiplier=m)
        for p, m in [("float32", 0), ("int8", 0), ("int8", 4), ("binary", 0), ("binary", 4)]
    }
    ndcg = {key: r.metrics["ndcg@10"] for key, r in res.items()}
    assert ndcg[("float32", 0)] >= ndcg[("int8", 0)] - 0.02
    assert ndcg[("binary", 4)] > ndcg[("binary", 0)]
    assert ndcg[("int8", 0)] > ndcg[("binary", 0)]
    assert res[("binary", 4)].bytes_per_vector == DIM // 8 and res[("int8", 0)].rescore_multiplier == 0
    # the query's own id among the docs: ignore_identical_ids fetches one more and drops it
    self_ids = dids[: len(queries)]
    own = evaluate_precision(
        self_ids, dids, {self_ids[0]: {dids[1]: 1}}, queries, docs, "int8", ks, ignore_identical_ids=True
    )
    assert own.metrics.ignore_identical_ids and own.metrics.n_queries_short_ranking == 0


def test_fewer_docs_than_k_pads(data) -> None:
    queries, docs = data
    for precision, mult in [("float32", 0), ("int8", 2), ("binary", 0), ("binary", 2)]:
        res = search_with_precision(
            queries[:4], docs[:3], 5, precision, calibration_embeddings=docs, rescore_multiplier=mult
        )
        assert res.ids.shape == (4, 5) and (res.ids[:, 3:] == -1).all() and np.isinf(res.scores[:, 3:]).all()
        assert sorted(res.ids[0, :3].tolist()) == [0, 1, 2]
