"""model=fasttext: gensim-trained word vectors as a sentence encoder, unseen words included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

CORPUS = [
    "The government announced new tax cuts for small businesses.",
    "Opposition leaders criticised the government over the budget deficit.",
    "The central bank raised interest rates to curb inflation.",
    "Businesses expect lower taxes to boost investment and hiring.",
    "Inflation rose sharply as energy prices climbed.",
    "The minister defended the budget in parliament on Tuesday.",
    "Bushfires destroyed homes near Sydney as firefighters battled the blaze.",
    "Firefighters contained the bushfire after strong winds eased.",
] * 5
TINY = dict(vector_size=16, epochs=2, min_count=1, bucket=2000, seed=7)
TINY_OVERRIDES = [f"model.fasttext.params.{k}={v}" for k, v in TINY.items()]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from embedlab.models.fasttext import FastTextParams, build_fasttext_encoder, train_fasttext

    cache = tmp_path_factory.mktemp("ft-cache")
    params = FastTextParams(**TINY)  # type: ignore[arg-type]
    model, resolved = build_fasttext_encoder(CORPUS, params, corpus_name="tiny", cache_dir=cache)
    kv, _, cached = train_fasttext(CORPUS, params, cache, corpus_name="tiny")
    assert cached  # the second call reads what the first trained
    return model, resolved, kv, params, cache


def test_unseen_words_get_gensim_ngram_vectors(trained) -> None:
    model, _, kv, _, _ = trained
    seen, unseen = ["government", "inflation"], ["govermnent", "inflationary", "xylophone"]
    assert all(w in kv.key_to_index for w in seen) and not any(w in kv.key_to_index for w in unseen)
    emb = model.encode(seen + unseen, convert_to_numpy=True)
    for word, vec in zip(seen + unseen, emb, strict=True):
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)  # non-zero before Normalize
        np.testing.assert_allclose(vec, _unit(kv[word]), atol=1e-6)  # gensim's own word vector
    # a typo stays closer to its word than an unrelated word does (shared n-grams)
    assert emb[2] @ emb[0] > emb[4] @ emb[0]


def test_sentence_vector_is_mean_or_max_of_word_vectors(trained) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize

    from embedlab.models.fasttext import FastTextEmbedding

    model, _, kv, _, _ = trained
    text = "The Government's budgett, again!"
    ws = ["the", "government", "s", "budgett", "again"]
    vecs = np.stack([kv[w] for w in ws])
    np.testing.assert_allclose(model.encode([text])[0], _unit(vecs.mean(0)), atol=1e-6)
    max_model = SentenceTransformer(
        modules=[FastTextEmbedding.from_keyed_vectors(kv, pooling="max"), Normalize()], device="cpu"
    )
    np.testing.assert_allclose(max_model.encode([text])[0], _unit(vecs.max(0)), atol=1e-6)
    assert np.linalg.norm(model.encode(["?!"])[0]) == 0.0  # no words: the zero vector, not NaN


def test_truncation_counts_words(trained) -> None:
    from embedlab.encode.encoder import Encoder

    model, _, _, _, _ = trained
    limit = model.max_seq_length
    long_text = " ".join(["budget"] * limit + ["inflation"] * 10)
    emb, stats = Encoder(model).encode([long_text, "budget"])
    assert stats.n_truncated == 1 and stats.max_tokens == limit + 10
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)  # the cut words never reach the vector


def test_training_is_seeded(trained) -> None:
    from embedlab.models.fasttext import train_fasttext

    _, _, kv, params, _ = trained
    fresh, folder, cached = train_fasttext(CORPUS, params, None, corpus_name="tiny")
    assert not cached and (folder / "meta.json").exists()
    np.testing.assert_array_equal(fresh.vectors_ngrams, kv.vectors_ngrams)
    assert list(fresh.index_to_key) == list(kv.index_to_key)


def test_save_and_load_reproduce_embeddings(trained, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from embedlab.encode.encoder import Encoder

    model, _, _, _, _ = trained
    model.save(str(tmp_path / "ft"))
    loaded = SentenceTransformer(str(tmp_path / "ft"), device="cpu", trust_remote_code=True)
    texts = ["Firefighters battled the blaze.", "unheard-of wordz"]
    np.testing.assert_allclose(loaded.encode(texts), model.encode(texts), atol=1e-7)
    assert Encoder(loaded).key == Encoder(model).key


def test_bad_params_are_clear_errors() -> None:
    from embedlab.errors import ConfigError, DataError
    from embedlab.models.fasttext import FastTextParams, train_fasttext

    with pytest.raises(ConfigError, match=r"Unknown fastText parameter\(s\) \['dims'\]"):
        FastTextParams.from_mapping({"dims": 3})
    with pytest.raises(ConfigError, match="min_n <= max_n"):
        FastTextParams(min_n=5, max_n=3)
    with pytest.raises(DataError, match="min_count=1"):
        train_fasttext(["one two three"], FastTextParams(min_count=5, epochs=1, bucket=10), None)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pooling=cls", "pooling=cls does not apply to model=fasttext"),
        ("fit=true", "cannot be fine-tuned"),
        ("dimension=proj128", "learned projection"),
    ],
)
def test_unsupported_settings_fail_at_config_time(make_cfg, override: str, message: str) -> None:
    from embedlab.config import check_config
    from embedlab.errors import ConfigError

    cfg = make_cfg("model=fasttext", "data=lee", override, task="evaluate")
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_eval_corpus_needs_sts_or_retrieval_data(make_cfg) -> None:
    from embedlab.config import build_specs
    from embedlab.errors import ConfigError
    from embedlab.tasks.model import build_model

    with pytest.raises(ConfigError, match="corpus=wiki, lee, or lines"):
        build_model(build_specs(make_cfg("model=fasttext", "data=tatoeba", task="evaluate")))


def test_evaluate_sts_writes_results(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=fasttext", "data=lee", "logger=none", *TINY_OVERRIDES, task="evaluate")
    metrics, objects = evaluate(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["metrics"]) == set(metrics)
    assert -1.0 <= metrics["test/lee/spearman_cosine"] <= 1.0
    model_meta = results["meta"]["model"]
    assert model_meta["source"] == "fasttext:lee:train" and model_meta["fingerprint"]
    assert objects["model"].get_embedding_dimension() == TINY["vector_size"]


def test_evaluate_retrieval_reuses_cached_embeddings(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    def run(name: str, *extra: str) -> dict[str, float]:
        cfg = make_cfg("model=fasttext", "data=retrieval_mock", "logger=none", *TINY_OVERRIDES, *extra,
                       task="evaluate", output_dir=tmp_path / name)  # fmt: skip
        return evaluate(cfg)[0]

    first = run("first")
    again = run("again", "quantization=binary")  # another precision: same float32 embeddings
    assert first["test/mock/n_texts_encoded"] > 0 and again["test/mock/n_texts_encoded"] == 0
    assert again["test/mock/n_texts_from_cache"] == first["test/mock/n_texts_encoded"]
    maxpool = run("max", "pooling=max")  # pooling is part of the cache key
    assert maxpool["test/mock/n_texts_encoded"] > 0
    assert 0.0 <= first["test/mock/ndcg@10"] <= 1.0
