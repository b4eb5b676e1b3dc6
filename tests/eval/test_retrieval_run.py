"""Retrieval through the runner: every index and precision config runs; the embedding cache
makes a second run (another index, precision or dimension) encode nothing new."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS


def _run(make_cfg, out: Path, *overrides: str) -> dict[str, float]:
    from embedlab.jobs import evaluate

    metrics, _ = evaluate(
        make_cfg(
            "model=tiny_bert",
            "data=retrieval_mock",
            "logger=none",
            *overrides,
            task="evaluate",
            output_dir=out,
        )
    )
    assert json.loads((out / "results.json").read_text())["metrics"].keys() == metrics.keys()
    return metrics


INDEXES = sorted(p.stem for p in (CONFIGS / "index").glob("*.yaml") if p.stem != "none")
PRECISIONS = sorted(p.stem for p in (CONFIGS / "quantization").glob("*.yaml"))


@pytest.mark.parametrize("index", INDEXES)
def test_every_index_config_runs(make_cfg, tmp_path: Path, index: str) -> None:
    metrics = _run(make_cfg, tmp_path, f"index={index}")
    kind = {"exact": "flat", "ivf_pq_rescore": "ivf_pq+rescore32"}.get(index, index)
    assert 0.0 <= metrics[f"test/mock/index_recall@10@{kind}"] <= 1.0
    assert (
        metrics[f"test/mock/index_latency_p50_ms@{kind}"] <= metrics[f"test/mock/index_latency_p99_ms@{kind}"]
    )
    assert f"test/mock/ndcg@10@{kind}" in metrics


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_config_runs(make_cfg, tmp_path: Path, precision: str) -> None:
    metrics = _run(make_cfg, tmp_path, f"quantization={precision}", "index=none")
    assert 0.0 <= metrics["test/mock/ndcg@10"] <= 1.0
    if precision != "none":
        tag = next(k.split("@", 2)[-1] for k in metrics if k.startswith("test/mock/ndcg@10@"))
        assert metrics[f"test/mock/bytes_per_vector@{tag}"] < metrics["test/mock/bytes_per_vector@float32"]


def test_second_run_reads_the_cache(make_cfg, tmp_path: Path) -> None:
    own_cache = f"paths.cache_dir={tmp_path / 'cache'}"  # not shared with other tests
    first = _run(make_cfg, tmp_path / "a", "index=exact", own_cache)
    assert first["test/mock/n_texts_encoded"] > 0 and first["test/mock/n_texts_from_cache"] == 0
    second = _run(make_cfg, tmp_path / "b", "index=hnsw", "quantization=int8", own_cache)
    assert second["test/mock/n_texts_encoded"] == 0
    assert second["test/mock/n_texts_from_cache"] == first["test/mock/n_texts_encoded"]
    assert second["test/mock/ndcg@10"] == pytest.approx(first["test/mock/ndcg@10"])


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, tiny_model_dirs) -> None:
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    cache = EmbeddingCache(tmp_path)
    encoder = Encoder(model, cache=cache)
    texts = ["one text", "two texts", "three"]
    first, _ = encoder.encode_cached(texts)
    entry = next(tmp_path.rglob("*.npy"))
    entry.write_bytes(entry.read_bytes()[:-8] + b"garbage!")  # same size, wrong bytes
    again, stats = encoder.encode_cached(texts)
    assert stats is not None and cache.stats.n_corrupt_rebuilt == 1
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_fine_tuned_weights_change_the_cache_key(tiny_model_dirs) -> None:
    import torch

    from embedlab.encode.cache import encoder_key
    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    before = Encoder(model).key
    assert before == encoder_key(model, "st-fp32") and before.endswith(":st-fp32")
    assert Encoder(model, EncodeSettings(backend="fast")).key == before.replace(":st-fp32", ":fast-bf16")
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert Encoder(model).key != before
    cls, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64, pooling="cls")
    )
    assert (
        Encoder(cls).key
        != Encoder(
            build_encoder(
                EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
            )[0]
        ).key
    )


def test_bad_combinations_fail_at_config_time(make_cfg) -> None:
    from embedlab.errors import ConfigError
    from embedlab.jobs import evaluate, train

    with pytest.raises(ConfigError, match="applies to retrieval and STS data"):
        evaluate(
            make_cfg("model=tiny_bert", "data=tatoeba", "quantization=int8", "logger=none", task="evaluate")
        )
    with pytest.raises(ConfigError, match="retrieval set"):
        train(make_cfg("model=tiny_bert", "data=retrieval_mock", "logger=none"))


@pytest.mark.parametrize("objective", ["mnrl", "mnrl_hard"])
def test_retrieval_fine_tuning_runs(make_cfg, tmp_path: Path, objective: str) -> None:
    from embedlab.jobs import train

    cfg = make_cfg("model=tiny_bert", "data=retrieval_mock", f"objective={objective}", "logger=none",
                   "trainer.max_epochs=2", "objective.hard_negatives.range_min=1",
                   "objective.hard_negatives.relative_margin=null")  # fmt: skip
    metrics, objects = train(cfg)
    # 4 training pairs, two of them for one query (and mined negatives may repeat positives):
    # one step per duplicate-free batch, and every pair trains in every epoch
    batches = objects["datamodule"].train_dataloader().batch_sampler
    per_epoch = [batches.batches(epoch) for epoch in (0, 1)]
    assert objects["trainer"].global_step == sum(len(b) for b in per_epoch) >= 2 * 2
    assert all(sorted(i for b in epoch for i in b) == [0, 1, 2, 3] for epoch in per_epoch)
    assert {"val/mock/ndcg@10", "test/mock/ndcg@10"} <= metrics.keys()
    if objective == "mnrl_hard":
        assert all(len(e.negatives) == 1 for e in objects["datamodule"].examples)
    assert (tmp_path / "model" / "modules.json").exists()


def test_no_duplicate_batches() -> None:
    from embedlab.data.datamodules import NoDuplicateBatches, RankingExample

    examples = [RankingExample(f"q{i}", f"doc{i % 5}") for i in range(20)]  # 4 queries share each doc
    batches = list(NoDuplicateBatches(examples, batch_size=4, seed=0))
    assert sorted(i for b in batches for i in b) == list(range(20))
    for b in batches:
        docs = [examples[i].positive for i in b]
        assert len(docs) == len(set(docs))


def test_tatoeba_bitext_through_the_runner(make_cfg, tmp_path: Path, data_dir: Path, minilm) -> None:
    from embedlab.jobs import evaluate

    metrics, _ = evaluate(
        make_cfg("model=minilm", "data=tatoeba", "data.langs=[deu]", "logger=none", task="evaluate")
    )
    acc = metrics["test/tatoeba/accuracy@deu"]
    assert 0.05 < acc < 0.5  # English-only MiniLM: far above chance (0.001), far below multilingual models
    assert acc == pytest.approx(
        (metrics["test/tatoeba/src2eng_accuracy@deu"] + metrics["test/tatoeba/eng2src_accuracy@deu"]) / 2
    )
    assert metrics["test/tatoeba/accuracy"] == acc


def test_dimension_precision_and_index_combine(make_cfg, tmp_path: Path) -> None:
    metrics = _run(
        make_cfg, tmp_path, "dimension=d64", "dimension.size=16", "quantization=int8", "index=hnsw"
    )
    for key in ("ndcg@10@16", "ndcg@10@int8", "ndcg@10@16@int8", "ndcg@10@hnsw", "ndcg@10@16@hnsw"):
        assert 0.0 <= metrics[f"test/mock/{key}"] <= 1.0, key
    assert metrics["test/mock/bytes_per_vector@16@int8"] == 16
    assert metrics["test/mock/bytes_per_vector@16"] == 64


@pytest.mark.slow
def test_scifact_metrics_equal_sentence_transformers_ir_evaluator(data_dir: Path, tiny_model_dirs) -> None:
    """Real data, real model: embedlab's retrieval evaluation equals sentence-transformers'
    InformationRetrievalEvaluator on SciFact (a 1,000-document slice holding every judged doc)."""
    from dataclasses import replace

    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from embedlab.data.retrieval import load_scifact
    from embedlab.encode.encoder import Encoder
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval
    from embedlab.models.encoder import EncoderSpec, build_encoder

    full = load_scifact(data_dir)
    judged = {d for rel in full.qrels.values() for d in rel}
    keep = [d for d in full.corpus if d in judged] + [d for d in full.corpus if d not in judged][
        : 1000 - len(judged)
    ]
    data = replace(full, corpus={d: full.corpus[d] for d in keep})
    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    settings = RetrievalEvalSettings(ks=(1, 3, 5, 10), ndcg_gain="binary")
    ours = evaluate_retrieval(Encoder(model), data, settings).metrics  # reference path, 64 a batch
    st = InformationRetrievalEvaluator(
        data.queries, data.corpus, {q: set(r) for q, r in data.qrels.items()},
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1, 3, 5, 10], precision_recall_at_k=[1, 3, 5, 10],
        map_at_k=[10], write_csv=False, batch_size=64,
    )(model)  # fmt: skip
    compared = 0
    for key, value in st.items():
        name = key.removeprefix("cosine_")
        assert ours[name] == pytest.approx(value, abs=2e-3), key  # float noise between two encode calls
        compared += 1
    assert compared == 4 + 8 + 3


def test_chunked_encoding_equals_one_pass(tiny_model_dirs) -> None:
    from embedlab.encode.encoder import Encoder
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(50)]
    chunked, stats = Encoder(model).encode_cached(texts, chunk_size=16)
    whole, _ = Encoder(model).encode_cached(texts, chunk_size=4096)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert stats is not None and stats.n_texts == 50


def test_cache_hit_reports_the_stats_recorded_when_encoded(tiny_model_dirs, tmp_path) -> None:
    """Cells that reuse cached embeddings still know the encoder's throughput (the report's
    Pareto front needs it), while the cache's own counters show nothing was encoded."""
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    texts = [f"sentence {i}" for i in range(20)]
    _, first = Encoder(model, cache=EmbeddingCache(tmp_path)).encode_cached(texts)
    cache = EmbeddingCache(tmp_path)
    _, again = Encoder(model, cache=cache).encode_cached(texts)
    assert first is not None and again == first
    assert cache.stats.n_encoded == 0 and cache.stats.n_from_cache == 20


def test_question_to_question_queries_reuse_the_document_embeddings(data_dir: Path, tiny_model_dirs) -> None:
    """squad_qq: every query is also a document, so only the documents are encoded, and the
    metrics equal those from encoding the queries separately (up to batch-padding float noise)."""
    from dataclasses import replace

    from embedlab.data.retrieval import load_squad_questions
    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.eval import retrieval_task
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval
    from embedlab.models.encoder import EncoderSpec, build_encoder

    full = load_squad_questions(data_dir / "squad_v1.1" / "dev-v1.1.json.gz")
    keep = list(full.corpus)[:300]
    queries = {q: full.queries[q] for q in keep if q in full.queries}
    data = replace(
        full, corpus={d: full.corpus[d] for d in keep}, queries=queries,
        qrels={q: {d: r for d, r in full.qrels[q].items() if d in set(keep)} for q in queries},
    )  # fmt: skip
    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    settings, encoder = RetrievalEvalSettings(ks=(1, 5, 10)), Encoder(model, EncodeSettings(batch_size=32))
    cache = encoder.cache
    reused = evaluate_retrieval(encoder, data, settings)
    assert cache.stats.n_encoded == len(data.corpus)  # the queries were not encoded again
    assert reused.details["encode_queries"] == {"reused_from_documents": len(queries)}
    assert "encode_queries_per_s" not in reused.metrics and "encode_documents_per_s" in reused.metrics

    original = retrieval_task.rows_of_known_texts
    try:
        retrieval_task.rows_of_known_texts = lambda *a: None  # force a separate query encoding
        separate = evaluate_retrieval(Encoder(model, EncodeSettings(batch_size=32)), data, settings)
    finally:
        retrieval_task.rows_of_known_texts = original
    for key in ("ndcg@10", "mrr@10", "recall@5", "accuracy@1"):
        assert reused.metrics[key] == pytest.approx(separate.metrics[key], abs=2e-3), key


def test_rows_of_known_texts() -> None:
    from embedlab.eval.retrieval_task import rows_of_known_texts

    known = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(rows_of_known_texts(["c", "a"], ["a", "b", "c"], known), known[[2, 0]])
    assert rows_of_known_texts(["a", "new"], ["a", "b", "c"], known) is None
    assert rows_of_known_texts([], ["a"], known[:1]) is None


@pytest.mark.parametrize("fusion", ["rrf", "convex"])
def test_hybrid_scores_both_parts_and_the_fusion(make_cfg, tmp_path: Path, fusion: str) -> None:
    """A hybrid job reports the dense ranking, BM25 (@bm25) and the fusion, with per-query values;
    convex chooses its weight on the training queries and records the search."""
    metrics = _run(make_cfg, tmp_path, f"fusion={fusion}")
    for tag in ("@flat", "@bm25", f"@flat@{fusion}"):
        assert 0.0 <= metrics[f"test/mock/ndcg@10{tag}"] <= 1.0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["meta"]["files"]["run_cell"] == f"@flat@{fusion}"
    assert set(results["comparisons"][f"test/mock/ndcg@10@flat@{fusion}"]) == {
        "test/mock/ndcg@10@flat",
        "test/mock/ndcg@10@bm25",
    }
    details = results["meta"]["eval"]["test/mock"]
    if fusion == "convex":
        search = details["fusion_weight_search"]
        assert search["split"] == "train" and len(search["tried"]) == 21
        assert details["fusion"]["weight"] in [float(w) for w in search["tried"]]


def test_fusion_refuses_a_reduced_or_quantized_ranking(make_cfg, tmp_path: Path) -> None:
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match="dimension=full quantization=none index=exact"):
        _run(make_cfg, tmp_path, "fusion=rrf", "quantization=int8")
    with pytest.raises(ConfigError, match="model=bm25 is a lexical retrieval baseline"):
        _run(make_cfg, tmp_path, "model=bm25", "data=lee")
