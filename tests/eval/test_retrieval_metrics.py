"""Retrieval metrics against pytrec_eval (trec_eval) and sentence-transformers' evaluators.

Measure mapping (trec_eval -> ours), on a run cut at k:
success_k -> accuracy@k, P_k -> precision@k, recall_k -> recall@k, recip_rank -> mrr@k,
ndcg_cut_k -> ndcg@k (ndcg_gain="graded"; equal to "binary" on binary qrels),
map_cut_k * R / min(k, R) -> map@k (ST divides by min(k, R), trec by R = relevant count).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from embedlab.errors import DataError
from embedlab.eval.arrays import topk_dot, topk_from_scores
from embedlab.eval.bitext import bitext_retrieval_accuracy
from embedlab.eval.retrieval import answer_hit_rate_at_k, retrieval_metrics

KS = (1, 3, 5, 10, 50)


def _random_case(seed: int, graded: bool, n_q: int = 40, n_d: int = 45, missing: bool = False):
    """Random qrels and a tie-free score matrix (each row a permutation)."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(n_q)]
    dids = [f"d{i}" for i in range(n_d)]
    qrels: dict[str, dict[str, int]] = {}
    for q in qids[: n_q - 4]:  # last 4 queries: no judgements
        docs = rng.choice(n_d, rng.integers(1, 12), replace=False)
        qrels[q] = {dids[d]: int(rng.integers(0, 4) if graded else rng.integers(0, 2)) for d in docs}
        qrels[q][dids[docs[0]]] = int(rng.integers(1, 4) if graded else 1)  # at least one relevant
        if missing and rng.random() < 0.3:
            qrels[q]["not-in-corpus"] = 1
    qrels["q0"] = {dids[0]: 0, dids[1]: 0}  # judged, nothing relevant: skipped
    scores = np.stack([rng.permutation(n_d) for _ in range(n_q)]).astype(np.float32)
    return qids, dids, qrels, scores


def _trec(qrels, qids, dids, scores, k, measures):
    import pytrec_eval

    run = {}
    for i, q in enumerate(qids):
        order = np.argsort(-scores[i], kind="stable")[:k]
        run[q] = {
            dids[d]: float(k - r) for r, d in enumerate(order)
        }  # strictly decreasing: trec keeps our order
    judged = {
        q: {d: int(r) for d, r in v.items()} for q, v in qrels.items() if any(r > 0 for r in v.values())
    }
    return pytrec_eval.RelevanceEvaluator(judged, measures).evaluate({q: run[q] for q in judged})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("graded", [False, True])
def test_matches_pytrec_eval(seed: int, graded: bool) -> None:
    qids, dids, qrels, scores = _random_case(seed, graded, missing=seed == 2)
    policy = "keep" if seed == 2 else "error"  # trec_eval counts unretrievable relevant docs in R
    res = retrieval_metrics(
        qids, dids, qrels, scores, KS, ndcg_gain="graded", missing_doc_policy=policy, per_query=True
    )
    assert res.n_queries_skipped_no_qrels == 4 and res.n_queries_skipped_no_relevant == 1
    assert res.n_queries_scored == len(qids) - 5
    assert res.ks_clamped == (50,)  # 45 documents
    assert res.per_query is not None
    for k in KS:
        trec = _trec(
            qrels,
            qids,
            dids,
            scores,
            k,
            {f"success.{k}", f"P.{k}", f"recall.{k}", f"ndcg_cut.{k}", "recip_rank", f"map_cut.{k}"},
        )
        assert set(trec) == set(res.per_query)
        for q, t in trec.items():
            ours = res.per_query[q]
            n_rel = sum(r > 0 for r in qrels[q].values())
            assert ours[f"accuracy@{k}"] == pytest.approx(t[f"success_{k}"], abs=1e-12)
            assert ours[f"precision@{k}"] == pytest.approx(t[f"P_{k}"], abs=1e-12)
            assert ours[f"recall@{k}"] == pytest.approx(t[f"recall_{k}"], abs=1e-12)
            assert ours[f"mrr@{k}"] == pytest.approx(t["recip_rank"], abs=1e-12)
            assert ours[f"ndcg@{k}"] == pytest.approx(t[f"ndcg_cut_{k}"], abs=1e-9)
            assert ours[f"map@{k}"] == pytest.approx(t[f"map_cut_{k}"] * n_rel / min(k, n_rel), abs=1e-9)
        for m in ("accuracy", "precision", "recall", "ndcg"):
            key = {"accuracy": "success", "precision": "P", "ndcg": "ndcg_cut", "recall": "recall"}[m]
            mean = np.mean([t[f"{key}_{k}"] for t in trec.values()])
            assert res.metrics[f"{m}@{k}"] == pytest.approx(mean, abs=1e-9)
    if not graded:  # binary qrels: binary and graded nDCG coincide
        binary = retrieval_metrics(qids, dids, qrels, scores, KS, missing_doc_policy=policy)
        assert binary.metrics == pytest.approx(res.metrics, abs=1e-12)


class _StubModel:
    """Just enough of a SentenceTransformer for ST's evaluators: looks embeddings up by text."""

    similarity_fn_name = "cosine"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

        class _Card:
            def set_evaluation_metrics(self, *args: object, **kwargs: object) -> None:
                pass

        self.model_card_data = _Card()

    def _encode(self, sentences, **kwargs):
        import torch

        rows = [torch.tensor(self.table[s]) for s in sentences]
        return rows if kwargs.get("convert_to_numpy") is False else torch.stack(rows)

    encode = encode_query = encode_document = _encode

    def similarity(self, a, b):
        from sentence_transformers.util import cos_sim

        return cos_sim(a, b)


def test_matches_sentence_transformers_ir_evaluator() -> None:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    rng = np.random.default_rng(7)
    n_q, n_d, dim = 25, 60, 16
    q_emb = rng.standard_normal((n_q, dim)).astype(np.float32)
    d_emb = rng.standard_normal((n_d, dim)).astype(np.float32)
    q_emb /= np.linalg.norm(q_emb, axis=1, keepdims=True)
    d_emb /= np.linalg.norm(d_emb, axis=1, keepdims=True)
    queries = {f"q{i}": f"query text {i}" for i in range(n_q)}
    corpus = {f"d{i}": f"doc text {i}" for i in range(n_d)}
    relevant = {
        f"q{i}": {f"d{j}" for j in rng.choice(n_d, rng.integers(1, 15), replace=False)}
        for i in range(n_q - 3)
    }
    table = {queries[f"q{i}"]: q_emb[i] for i in range(n_q)} | {corpus[f"d{i}"]: d_emb[i] for i in range(n_d)}

    evaluator = InformationRetrievalEvaluator(
        queries,
        corpus,
        relevant,
        mrr_at_k=[5, 10],
        ndcg_at_k=[5, 10],
        accuracy_at_k=[1, 3, 5, 10],
        precision_recall_at_k=[1, 3, 5, 10],
        map_at_k=[10, 100],  # 100 > 60 docs: both clamp the depth, divide by min(k, R)
        write_csv=False,
    )
    st = evaluator(_StubModel(table))
    qrels = {q: dict.fromkeys(docs, 1) for q, docs in relevant.items()}
    ours = retrieval_metrics(
        list(queries), list(corpus), qrels, ks=(1, 3, 5, 10, 100), query_emb=q_emb, doc_emb=d_emb
    )
    assert ours.n_queries_scored == n_q - 3
    compared = 0
    for key, value in st.items():
        ours_key = key.removeprefix("cosine_")
        assert ours.metrics[ours_key] == pytest.approx(value, abs=1e-9), key
        compared += 1
    assert compared == 4 + 8 + 2 + 2 + 2


def test_bitext_matches_sentence_transformers_translation_evaluator() -> None:
    from sentence_transformers.sentence_transformer.evaluation import TranslationEvaluator

    rng = np.random.default_rng(3)
    n, dim = 40, 8
    tgt = rng.standard_normal((n, dim)).astype(np.float32)
    src = tgt + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)  # noisy: some NN wrong
    src_texts = [f"src {i}" for i in range(n)]
    tgt_texts = [f"tgt {i}" for i in range(n)]
    tgt_texts[5] = tgt_texts[6] = "same English"  # a duplicate: text match forgives confusing them
    tgt[6] = tgt[5]
    table = dict(zip(src_texts, src, strict=True)) | dict(zip(tgt_texts, tgt, strict=True))
    st = TranslationEvaluator(src_texts, tgt_texts, write_csv=False)(_StubModel(table))
    ours = bitext_retrieval_accuracy(src, tgt, match="text", src_texts=src_texts, tgt_texts=tgt_texts)
    assert ours.src2tgt == pytest.approx(st["src2trg_accuracy"])
    assert ours.tgt2src == pytest.approx(st["trg2src_accuracy"])
    assert 0 < ours.src2tgt < 1
    strict = bitext_retrieval_accuracy(src, tgt)
    assert strict.match == "index" and strict.src2tgt <= ours.src2tgt
    assert bitext_retrieval_accuracy(tgt, tgt).src2tgt < 1  # rows 5 and 6 identical: index 6 -> 5
    with pytest.raises(ValueError, match="texts"):
        bitext_retrieval_accuracy(src, tgt, match="text")


def test_entry_points_agree_and_chunking_does_not_matter() -> None:
    import torch

    rng = np.random.default_rng(1)
    q = rng.standard_normal((30, 12)).astype(np.float32)
    d = rng.standard_normal((50, 12)).astype(np.float32)
    qids, dids = [f"q{i}" for i in range(30)], [f"d{i}" for i in range(50)]
    qrels = {qids[i]: {dids[(3 * i) % 50]: 1, dids[(7 * i + 1) % 50]: 2} for i in range(30)}
    ks = (1, 5, 10)
    base = retrieval_metrics(qids, dids, qrels, q @ d.T, ks)
    assert retrieval_metrics(qids, dids, qrels, torch.from_numpy(q @ d.T), ks, chunk_size=7) == base
    assert (
        retrieval_metrics(qids, dids, qrels, ks=ks, query_emb=q, doc_emb=d, chunk_size=4).metrics
        == base.metrics
    )
    s, i = topk_dot(q, d, 10)
    shuffled = rng.permuted(np.arange(10)[None].repeat(30, 0), axis=1)  # unsorted rows are re-sorted
    arrays = (np.take_along_axis(s, shuffled, 1), np.take_along_axis(i, shuffled, 1))
    assert retrieval_metrics(qids, dids, qrels, ks=ks, ranked=arrays).metrics == base.metrics
    lists = [
        [(int(a), float(b)) for a, b in zip(ir, sr, strict=True)][::-1] for ir, sr in zip(i, s, strict=True)
    ]
    assert retrieval_metrics(qids, dids, qrels, ks=ks, ranked=lists).metrics == base.metrics


def test_ties_break_by_lowest_doc_index() -> None:
    scores = np.zeros((3, 20), dtype=np.float32)
    scores[1, 15] = 1.0
    vals, idx = topk_from_scores(scores, 4, chunk_size=2)
    assert idx[0].tolist() == [0, 1, 2, 3]
    assert idx[1].tolist() == [15, 0, 1, 2]
    assert vals.shape == (3, 4)


def test_ignore_identical_ids() -> None:
    ids = [f"x{i}" for i in range(6)]
    emb = np.eye(6, dtype=np.float32) + 0.1  # every item is its own nearest neighbour
    emb[1] += 0.5 * emb[0]  # x1 is x0's second nearest
    qrels = {"x0": {"x1": 1, "x0": 1}, "x1": {"x0": 1}}
    plain = retrieval_metrics(ids, ids, qrels, ks=(1, 5), query_emb=emb, doc_emb=emb)
    assert plain.ignore_identical_ids is False and plain.n_judgements_identical == 0
    ignored = retrieval_metrics(
        ids, ids, qrels, ks=(1, 5), query_emb=emb, doc_emb=emb, ignore_identical_ids=True
    )
    assert ignored.ignore_identical_ids is True
    assert ignored.n_judgements_identical == 1  # x0 -> x0 dropped
    assert ignored["accuracy@1"] == 1.0 and ignored["recall@5"] == 1.0
    s, i = topk_dot(emb, emb, 6)  # depth 6 = corpus; the metric drops the query's own id
    ranked = retrieval_metrics(ids, ids, qrels, ks=(1, 5), ranked=(s, i), ignore_identical_ids=True)
    assert ranked.metrics == ignored.metrics
    excl_s, excl_i = topk_dot(emb, emb, 6, exclude=np.arange(6))
    assert (excl_i[:, -1] == -1).all() and not (excl_i == np.arange(6)[:, None]).any()
    assert ignored.as_dict()["ignore_identical_ids"] is True


def test_bad_input_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    qids, dids = ["a", "b", "c"], ["x", "y", "z"]
    scores = np.arange(9, dtype=np.float32).reshape(3, 3)
    qrels = {"a": {"x": 1}, "b": {"y": 1, "gone": 1}, "zz": {"x": 1}}
    with pytest.raises(DataError, match="Duplicate query ids"):
        retrieval_metrics(["a", "a", "c"], dids, qrels, scores, (1,))
    with pytest.raises(DataError, match="Duplicate document ids"):
        retrieval_metrics(qids, ["x", "x", "z"], qrels, scores, (1,))
    with pytest.raises(DataError, match="Empty corpus"):
        retrieval_metrics(qids, [], qrels, np.zeros((3, 0)), (1,))
    with pytest.raises(DataError, match="not in the corpus"):
        retrieval_metrics(qids, dids, qrels, scores, (1,))
    with pytest.raises(DataError, match="NaN"):
        retrieval_metrics(qids, dids, {"a": {"x": 1}}, np.full((3, 3), np.nan), (1,))
    with pytest.raises(ValueError, match="shape"):
        retrieval_metrics(qids, dids, {"a": {"x": 1}}, scores[:2], (1,))
    with pytest.raises(DataError, match="No query can be scored"):
        retrieval_metrics(qids, dids, {"other": {"x": 1}}, scores, (1,))

    caplog.set_level(logging.WARNING)
    keep = retrieval_metrics(qids, dids, qrels, scores, (1, 2, 5), missing_doc_policy="keep")
    drop = retrieval_metrics(qids, dids, qrels, scores, (1, 2, 5), missing_doc_policy="drop")
    for res in (keep, drop):
        assert res.n_judgements_missing_doc == 1
        assert res.n_queries_scored == 2 and res.n_queries_skipped_no_qrels == 1
        assert res.n_qrels_queries_unknown == 1  # "zz"
        assert res.ks_clamped == (5,)
    # query b ranks z, y, x: y (relevant) at rank 2; "gone" is unretrievable
    assert keep.per_query is None
    assert keep["recall@5"] == pytest.approx((1 + 0.5) / 2) and drop["recall@5"] == 1.0
    assert keep["precision@5"] == pytest.approx((1 / 5 + 1 / 5) / 2)  # divides by k, not by 3 docs
    assert "exceed" in caplog.text and "missing from the corpus" in caplog.text


def test_answer_hit_rate() -> None:
    retrieved = [
        ["Nothing here.", "The  Denver\nBroncos won."],
        ["1889 is the year."],
        ["irrelevant"],
        ["anything"],
    ]
    gold = [["denver broncos"], ["1889"], ["absent"], []]
    res = answer_hit_rate_at_k(retrieved, gold, ks=(1, 2))
    assert res.n_queries_scored == 3 and res.n_queries_skipped_no_answer == 1
    assert res.metrics == {"answer_hit@1": pytest.approx(1 / 3), "answer_hit@2": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        answer_hit_rate_at_k(retrieved, gold[:2])
