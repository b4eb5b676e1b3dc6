"""Out-of-vocabulary statistics and seeded typo noise (src/embedlab/studies/oov.py)."""

from __future__ import annotations

import re

import pytest

TEXTS = [
    "The unbelievability of it!",
    "the the ☃ bushfire",  # the snowman is no word but one [UNK] token in MiniLM's WordPiece vocabulary
]


def test_tokenizer_stats_on_hand_made_words(minilm) -> None:
    from embedlab.studies.oov import tokenizer_stats

    tok = minilm.tokenizer
    assert tok.tokenize("unbelievability") == ["un", "##bel", "##ie", "##va", "##bility"]
    stats = tokenizer_stats(tok, TEXTS)
    # running words: The unbelievability of it the the bushfire -> 7, distinct (cased) 6
    assert (stats.n_texts, stats.n_words, stats.n_distinct_words) == (2, 7, 6)
    # The/of/it/the/the: 1 token each; unbelievability 5, bushfire 2 (bush ##fire): 12 tokens
    assert stats.tokens_per_word == pytest.approx(12 / 7)
    assert stats.split_word_rate == pytest.approx(2 / 7)
    assert stats.unk_word_rate == 0.0
    # whole texts: 12 word tokens + "!" + "[UNK]" = 14 tokens, one of them unknown
    assert stats.n_text_tokens == 14 and stats.unk_token_rate == pytest.approx(1 / 14)
    assert stats.unk_examples == (("☃", 1),)
    assert stats.split_examples[0] == ("bushfire", ("bush", "##fire"))  # ties by word
    # the same numbers from the tokenizer's own per-word API
    words = re.findall(r"\w+", " ".join(TEXTS))
    pieces = [tok.tokenize(w) for w in words]
    assert stats.tokens_per_word == pytest.approx(sum(map(len, pieces)) / len(words))
    assert stats.split_word_rate == pytest.approx(sum(len(p) > 1 for p in pieces) / len(words))


def test_tokenizer_stats_reject_texts_without_words(minilm) -> None:
    from embedlab.studies.oov import tokenizer_stats

    with pytest.raises(ValueError, match="no words"):
        tokenizer_stats(minilm.tokenizer, ["?!", "..."])


def test_vocabulary_stats() -> None:
    from embedlab.studies.oov import vocabulary_stats

    stats = vocabulary_stats({"the", "cat", "sat"}, ["The cat sat.", "The dgo sat on the mat"])
    # 9 running words, 2 unknown (dgo, on, mat -> 3): 3 / 9; distinct: the cat sat dgo on mat -> 3 / 6
    assert stats.n_words == 9 and stats.oov_word_rate == pytest.approx(3 / 9)
    assert stats.n_distinct_words == 6 and stats.oov_distinct_rate == pytest.approx(3 / 6)


def _corpus() -> list[str]:
    import random

    rng = random.Random(0)
    vocab = ["protein", "cells", "mice", "expression", "tumour", "a", "of", "increases", "IL", "2019"]
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 15))) + "." for _ in range(60)]


def _changed(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for a, b in zip(before, after, strict=True):
        wa, wb = re.findall(r"\w+", a), re.findall(r"\w+", b)
        assert len(wa) == len(wb)  # edits never merge or split words
        pairs += [(x, y) for x, y in zip(wa, wb, strict=True) if x != y]
    return pairs


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance 1: one insert, delete, substitution or adjacent swap."""
    if abs(len(a) - len(b)) == 1:
        short, long_ = sorted((a, b), key=len)
        return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))
    diff = [i for i in range(len(a)) if a[i] != b[i]] if len(a) == len(b) else []
    if len(diff) == 1:
        return True
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.2, 1.0])
def test_typos_hit_exactly_the_requested_share_of_words(rate: float) -> None:
    from embedlab.studies.oov import add_typos

    texts = _corpus()
    noisy = add_typos(texts, rate, seed=3)
    eligible = [w for t in texts for w in re.findall(r"\w+", t) if w.isalpha() and len(w) >= 2]
    assert noisy.n_eligible == len(eligible)
    assert noisy.n_edited == round(rate * len(eligible)) == sum(noisy.edits.values())
    changed = _changed(texts, noisy.texts)
    assert len(changed) == noisy.n_edited  # every edit changes its word, no word gets two
    assert all(_one_edit(a, b) for a, b in changed)
    assert all(a.isalpha() and len(a) >= 2 for a, _ in changed)  # "a" and "2019" are never touched
    if rate == 1.0:
        assert set(noisy.edits) == {"insert", "delete", "swap", "substitute"}


def test_typos_are_seeded_and_nested() -> None:
    from embedlab.studies.oov import add_typos

    texts = _corpus()
    assert add_typos(texts, 0.1, seed=1).texts == add_typos(texts, 0.1, seed=1).texts
    assert add_typos(texts, 0.1, seed=1).texts != add_typos(texts, 0.1, seed=2).texts
    low, high = _changed(texts, add_typos(texts, 0.05, seed=1).texts), add_typos(texts, 0.2, seed=1)
    # the words edited at 5% carry the same typo at 20%
    high_words = [w for t in high.texts for w in re.findall(r"\w+", t)]
    assert all(b in high_words for _, b in low)
    assert add_typos(texts, 0.0, seed=1).texts == texts


def test_typo_arguments_are_checked() -> None:
    from embedlab.studies.oov import add_typos

    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\]"):
        add_typos(["a text"], 5, seed=0)
    with pytest.raises(ValueError, match="min_len"):
        add_typos(["a text"], 0.1, seed=0, min_len=1)


def test_retrieval_under_typos_encodes_the_corpus_once(tiny_model_dirs, tmp_path) -> None:
    from embedlab.data.retrieval import mock_retrieval_set
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder
    from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval
    from embedlab.models.encoder import EncoderSpec, build_encoder
    from embedlab.studies.oov import retrieval_under_typos

    model, _ = build_encoder(EncoderSpec(name="tiny_bert", tiny_architecture="bert", max_seq_length=64))
    data = mock_retrieval_set()
    settings = RetrievalEvalSettings(ks=(1, 10), index=None, n_latency_queries=0)
    cache = EmbeddingCache(tmp_path / "emb")
    rows = retrieval_under_typos(Encoder(model, cache=cache), data, [0.0, 0.5, 1.0], [1, 2], settings)
    assert [(r["rate"], r["seed"]) for r in rows] == [(0.0, 1), (0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)]
    n_docs = len(data.corpus)
    assert cache.stats.n_from_cache >= (len(rows) - 1) * n_docs  # documents: encoded at the first level only
    assert cache.stats.n_encoded <= n_docs + len(rows) * len(data.queries)
    clean = evaluate_retrieval(Encoder(model), data, settings)
    assert rows[0]["ndcg@10"] == pytest.approx(clean.metrics["ndcg@10"])
    assert rows[-1]["n_edited_words"] == rows[-1]["n_eligible_words"] > 0


def test_metric_vs_noise_plot(tmp_path) -> None:
    from embedlab.viz.plots import mean_std, plot_metric_vs_noise

    rows = [{"model": m, "rate": r, "seed": s, "ndcg@10": 0.5 - r + 0.01 * s}
            for m in ("a", "b") for r in (0.0, 0.1) for s in (1, 2)]  # fmt: skip
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5)) and mean_std([4.0]) == (4.0, 0.0)
    assert plot_metric_vs_noise(rows, tmp_path / "p.png", ylabel="nDCG@10").stat().st_size > 0
