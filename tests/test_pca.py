"""PCA as a dimension: equals scikit-learn, is fitted on training texts only (STS train
sentences, retrieval corpus), is cached, and runs through evaluate and train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedlab.encode.cache import EmbeddingCache
from embedlab.eval.pca import PCAProjection, fit_pca, fitted_pca, pca_key


@pytest.fixture(scope="module")
def emb() -> np.ndarray:
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((12, 48))  # low-rank structure plus noise, like real embeddings
    return (rng.standard_normal((300, 12)) @ basis + 0.1 * rng.standard_normal((300, 48))).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_fit_is_scikit_learn_pca_of_the_unit_embeddings(emb: np.ndarray) -> None:
    """fit_pca is sklearn's PCA on L2-normalised float64 embeddings, stored in float32; checked
    against sklearn and, independently, against the SVD it stands for."""
    from sklearn.decomposition import PCA

    unit = _unit(emb.astype(np.float64))
    ref = PCA(n_components=16, svd_solver="full").fit(unit)
    ours = fit_pca(emb, 16)
    assert ours.components.dtype == ours.mean.dtype == np.float32
    np.testing.assert_array_equal(ours.components, ref.components_.astype(np.float32))  # same signs too
    np.testing.assert_array_equal(ours.mean, ref.mean_.astype(np.float32))
    np.testing.assert_allclose(ours.transform(emb), _unit(ref.transform(_unit(emb))), atol=1e-5)
    # the directions of largest variance: top right singular vectors of the centred data (up to sign)
    _, s, vt = np.linalg.svd(unit - unit.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(ours.components * vt[:16], axis=1)), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours.explained_variance_ratio, (s**2 / (s**2).sum())[:16], rtol=1e-5)
    out = ours.transform(emb[:5])
    assert out.shape == (5, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)  # renormalised
    round_trip = PCAProjection.from_array(ours.to_array())
    np.testing.assert_array_equal(round_trip.components, ours.components)
    np.testing.assert_array_equal(round_trip.explained_variance_ratio, ours.explained_variance_ratio)


def test_bad_requests_are_clear(emb: np.ndarray) -> None:
    with pytest.raises(ValueError, match="at least that size; these have 48"):
        fit_pca(emb, 64)
    with pytest.raises(ValueError, match="at least 16 fit texts; got 10"):
        fit_pca(emb[:10], 16)
    with pytest.raises(ValueError, match="fitted on 48-dim"):
        fit_pca(emb, 8).transform(emb[:, :32])


def test_fitted_projection_is_cached(emb: np.ndarray, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    key = pca_key("model-a", ["t1", "t2"], 8)
    calls: list[int] = []

    def fit_set() -> np.ndarray:
        calls.append(1)
        return emb

    first = fitted_pca(fit_set, 8, cache=cache, key=key)
    second = fitted_pca(fit_set, 8, cache=cache, key=key)
    assert len(calls) == 1  # the second call read the cache and asked for no embeddings
    np.testing.assert_array_equal(first.components, second.components)
    assert pca_key("model-b", ["t1", "t2"], 8) != key and pca_key("model-a", ["t1"], 8) != key
    assert pca_key("model-a", ["t1", "t2"], 16) != key
    fitted_pca(fit_set, 8, cache=EmbeddingCache(None), key=key)  # cache off: refits
    assert len(calls) == 2
    wrong = pca_key("model-a", ["t1", "t2"], 4)
    cache.put(wrong, first.to_array(), {"what": "pca"})  # an 8-component entry under a 4-component key
    assert fitted_pca(fit_set, 4, cache=cache, key=wrong).n_components == 4 and len(calls) == 3


def _stsb_cfg(make_cfg, out: Path, *overrides: str, task: str = "evaluate"):
    return make_cfg("model=minilm", "data=stsb", "data.max_pairs_per_split=100", "logger=none",
                    *overrides, task=task, output_dir=out)  # fmt: skip


def test_sts_pca_is_fitted_on_the_train_split(make_cfg, data_dir: Path, tmp_path: Path) -> None:
    from embedlab.config import build_specs
    from embedlab.eval.sts import sts_embeddings, sts_metrics
    from embedlab.jobs import evaluate
    from embedlab.report.cells import quality_of
    from embedlab.report.scan import read_job
    from embedlab.tasks.model import make_encoder

    own_cache = f"paths.cache_dir={tmp_path / 'cache'}"
    cfg = _stsb_cfg(make_cfg, tmp_path / "a", "dimension=pca128", own_cache)
    first, objects = evaluate(cfg)
    assert 0.5 < first["test/stsb/spearman_cosine@pca128"] <= 1.0
    assert 0.0 < first["test/stsb/pca_explained_variance@pca128"] < 1.0
    assert first["test/stsb/bytes_per_vector@pca128"] == 512
    # By hand: PCA fitted on the distinct train sentences, applied to the test pairs
    data = objects["datamodule"].data
    train, test = data.splits["train"], data.splits["test"]
    fit_texts = list(dict.fromkeys(list(train.sentence1) + list(train.sentence2)))
    model = objects["model"]
    # the run's encode settings (bf16 results depend on the batches), without its cache
    encoder = make_encoder(build_specs(cfg), model).replace(cache=EmbeddingCache(None))
    pca = fit_pca(encoder.encode(fit_texts)[0], 128)
    a, b, _ = sts_embeddings(encoder, test)
    expected = sts_metrics(pca.transform(a), pca.transform(b), test.scores)["spearman_cosine"]
    assert first["test/stsb/spearman_cosine@pca128"] == pytest.approx(expected, abs=1e-5)

    # Another precision on the same PCA: nothing encoded, nothing refitted
    second, _ = evaluate(
        _stsb_cfg(make_cfg, tmp_path / "b", "dimension=pca128", "quantization=int8", own_cache)
    )
    assert second["test/stsb/n_texts_encoded"] == 0 and second["test/stsb/n_texts_from_cache"] > 0
    assert second["test/stsb/spearman_cosine@pca128"] == first["test/stsb/spearman_cosine@pca128"]
    key, value = quality_of(read_job(tmp_path / "b"))
    assert key == "test/stsb/spearman_cosine@pca128@int8" and value == second[key]
    assert json.loads((tmp_path / "b" / "results.json").read_text())["metrics"][key] == value


def test_sts_pca_needs_enough_train_sentences(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=minilm", "data=lee", "dimension=pca128", "logger=none", task="evaluate")
    with pytest.raises(ValueError, match="train split of data=lee, which holds 50 distinct sentences"):
        evaluate(cfg)


def test_pca_fast_dev_run(make_cfg, data_dir: Path, tmp_path: Path) -> None:
    from embedlab.jobs import train

    metrics, _ = train(_stsb_cfg(make_cfg, tmp_path, "dimension=pca128", "debug=fast", "data.max_pairs_per_split=80",
                                 task="train"))  # fmt: skip
    assert -1.0 <= metrics["val/stsb/spearman_cosine@pca128"] <= 1.0
    assert "test/stsb/spearman_cosine@pca128" in metrics


def test_retrieval_pca_is_fitted_on_the_corpus(tmp_path: Path, tiny_model_dirs) -> None:
    from embedlab.data.retrieval import mock_retrieval_set
    from embedlab.encode.encoder import Encoder
    from embedlab.eval.retrieval import retrieval_metrics
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    data, cache = mock_retrieval_set(), EmbeddingCache(tmp_path)
    encoder = Encoder(model, cache=cache)
    settings = RetrievalEvalSettings(ks=(1, 3, 5), pca_dims=(4,), precision="int8", answer_ks=(1,))
    metrics = evaluate_retrieval(encoder, data, settings).metrics
    doc_texts = [data.corpus[d] for d in data.doc_ids]
    assert cache.has(pca_key(encoder.key, doc_texts, 4))  # keyed by (and fitted on) the documents
    docs, _ = encoder.encode_cached(doc_texts)
    queries, _ = encoder.encode_cached([data.queries[q] for q in data.query_ids])
    pca = fit_pca(docs, 4)
    by_hand = retrieval_metrics(
        data.query_ids,
        data.doc_ids,
        data.qrels,
        ks=(1, 3, 5),
        query_emb=pca.transform(queries),
        doc_emb=pca.transform(docs),
        ndcg_gain="graded",
    )
    assert metrics["ndcg@5@pca4"] == pytest.approx(by_hand.metrics["ndcg@5"], abs=1e-6)
    assert "ndcg@5@pca4@int8" in metrics and metrics["bytes_per_vector@pca4"] == 16


def test_retrieval_pca_through_the_runner(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    own_cache = f"paths.cache_dir={tmp_path / 'cache'}"
    base = ("model=tiny_bert", "data=retrieval_mock", "logger=none", "index=none", "dimension=pca128",
            "dimension.size=4", own_cache)  # fmt: skip
    first, _ = evaluate(make_cfg(*base, task="evaluate", output_dir=tmp_path / "a"))
    second, _ = evaluate(make_cfg(*base, "quantization=binary", task="evaluate", output_dir=tmp_path / "b"))
    assert first["test/mock/ndcg@10@pca4"] == second["test/mock/ndcg@10@pca4"]
    assert second["test/mock/n_texts_encoded"] == 0
    assert "test/mock/ndcg@10@pca4@binary+rescore4" in second
