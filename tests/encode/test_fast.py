"""The fast encode path gives what sentence-transformers' ``encode`` gives (correctness only)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.encode.encoder import EncodeSettings, reference_encode
from embedlab.encode.fast import fast_encode, plan_batches, unsupported_reason
from embedlab.errors import DataError
from embedlab.models.encoder import EncoderSpec, build_encoder

FP32: dict = {"precision": "fp32"}
WORDS = "the minister said on tuesday that the government would review its policy on refugees".split()


def varied_texts(n: int = 40, seed: int = 0) -> list[str]:
    """Sentences of 1 to ~90 words: some over a 64-token limit, some repeated."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(k))) for k in rng.integers(1, 90, size=n)]
    return texts + texts[:5]  # duplicates


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "xlm-roberta", "mpnet"])
def test_fp32_equals_sentence_transformers_on_tiny_models(
    tiny_model_dirs: dict[str, Path], arch: str
) -> None:
    model, _ = build_encoder(
        EncoderSpec(name=arch, name_or_path=str(tiny_model_dirs[arch]), max_seq_length=64)
    )
    texts = varied_texts()
    ref = model.encode(texts, batch_size=8, convert_to_numpy=True, show_progress_bar=False)
    for opts in (FP32, {"precision": "fp32", "token_budget": None, "sort_by_length": False}):
        ours, stats = fast_encode(model, texts, batch_size=8, **opts)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=1e-5)
    _, ref_stats = reference_encode(model, texts, batch_size=8)
    assert stats.n_truncated == ref_stats.n_truncated > 0
    assert (stats.n_texts, stats.n_encoded, stats.max_tokens) == (
        ref_stats.n_texts,
        ref_stats.n_encoded,
        ref_stats.max_tokens,
    )


@pytest.mark.parametrize("pooling", ["cls", "max", "weightedmean"])
def test_pooling_and_projection_follow_the_model(tiny_model_dirs: dict[str, Path], pooling: str) -> None:
    spec = EncoderSpec(
        name="bert",
        name_or_path=str(tiny_model_dirs["bert"]),
        max_seq_length=64,
        pooling=pooling,
        projection_dim=24,
    )
    model, _ = build_encoder(spec)
    texts = varied_texts(20, seed=2)
    ref = model.encode(texts, batch_size=8, convert_to_numpy=True, show_progress_bar=False)
    ours, _ = fast_encode(model, texts, batch_size=8, **FP32)
    assert ours.shape == (len(texts), 24)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    bf16, _ = fast_encode(model, texts, batch_size=8)  # transformer in bf16, dense in fp32
    assert cosine(bf16, ref).min() > 0.99
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 weights put back


def test_minilm_fp32_equal_and_bf16_close(minilm) -> None:
    texts = varied_texts(60, seed=1) + [
        "A man is playing a guitar.",
        "Short.",
        "Two dogs run through a field.",
    ]
    ref = minilm.encode(texts, batch_size=16, convert_to_numpy=True, show_progress_bar=False)
    fp32, _ = fast_encode(minilm, texts, batch_size=16, **FP32)
    np.testing.assert_allclose(fp32, ref, atol=1e-5)
    bf16, _ = fast_encode(minilm, texts, batch_size=16)  # default: bf16 weights
    assert EncodeSettings().precision == "bf16"
    assert bf16.dtype == np.float32
    assert cosine(bf16, fp32).min() > 0.999


def test_order_and_duplicates(minilm) -> None:
    texts = ["b second text", "a first", "b second text", "c a rather longer third text here", "a first"]
    emb, stats = fast_encode(minilm, texts, batch_size=2, **FP32)
    assert (stats.n_texts, stats.n_encoded) == (5, 3)
    np.testing.assert_array_equal(emb[0], emb[2])
    np.testing.assert_array_equal(emb[1], emb[4])
    singles = np.stack([fast_encode(minilm, [t], **FP32)[0][0] for t in texts])
    np.testing.assert_allclose(emb, singles, atol=1e-5)


def test_truncation_counted_and_logged(minilm, caplog: pytest.LogCaptureFixture) -> None:
    long_text = " ".join(WORDS * 30)  # ~450 tokens > 256
    texts = ["short one", long_text, "another " + long_text]
    with caplog.at_level(logging.WARNING, logger="embedlab.encode"):
        emb, stats = fast_encode(minilm, texts, **FP32)
    assert stats.n_truncated == 2 and stats.max_tokens > stats.max_seq_length == 256
    assert "2 of 3 distinct texts exceed" in caplog.text
    ref = minilm.encode(texts, convert_to_numpy=True, show_progress_bar=False)  # truncates at 256
    np.testing.assert_allclose(emb, ref, atol=1e-5)


def test_no_texts(minilm) -> None:
    emb, stats = fast_encode(minilm, [])
    assert emb.shape == (0, 384) and stats.n_texts == 0


def test_100k_character_text(minilm) -> None:
    huge = ("word " * 20_000)[:100_000]
    emb, stats = fast_encode(minilm, [huge, "tiny"], what="documents")
    assert emb.shape == (2, 384) and np.isfinite(emb).all()
    assert stats.n_truncated == 1 and stats.max_tokens > 10_000


@pytest.mark.parametrize("bad", [["fine", ""], ["   ", "fine"], ["\n\t"]])
def test_empty_and_whitespace_rejected_like_encode(minilm, bad: list[str]) -> None:
    with pytest.raises(DataError) as ours:
        fast_encode(minilm, bad, what="sentences")
    with pytest.raises(DataError) as theirs:
        reference_encode(minilm, bad, what="sentences")
    assert str(ours.value) == str(theirs.value)


def test_threads_and_module_modes_restored(minilm) -> None:
    before = torch.get_num_threads()
    minilm.train()
    minilm[0].auto_model.eval()  # mixed modes, as build_encoder leaves them
    try:
        fast_encode(minilm, ["one", "two"], threads=1)
        assert minilm.training and minilm[1].training and not minilm[0].auto_model.training
        assert torch.get_num_threads() == before
    finally:
        minilm.eval()


def test_prompted_model_falls_back_to_encode(tiny_model_dirs: dict[str, Path]) -> None:
    model, _ = build_encoder(
        EncoderSpec(name="bert", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    model.prompts = {"query": "query: "}
    model.default_prompt_name = "query"
    texts = ["what is a refugee", "the minister said"]
    ours, _ = fast_encode(model, texts, **FP32)
    ref = model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    plain = model.encode(texts, prompt="", convert_to_numpy=True, show_progress_bar=False)
    assert not np.allclose(ours, plain, atol=1e-3)  # the prompt was applied


def test_saved_and_reloaded_model_takes_the_fast_path(minilm, tmp_path: Path) -> None:
    """A model saved by a run and loaded back (model=saved) encodes exactly as in the run.

    sentence-transformers fills ``module_kwargs`` with empty lists on load; treating that as
    "has kwargs" once sent reloaded models to the float32 fallback, so a saved model scored
    differently from the run that saved it.
    """
    from sentence_transformers import SentenceTransformer

    minilm.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert unsupported_reason(reloaded) is None
    texts = varied_texts(12)
    np.testing.assert_array_equal(
        fast_encode(reloaded, texts, precision="bf16")[0], fast_encode(minilm, texts, precision="bf16")[0]
    )


@pytest.mark.parametrize("budget", [None, 1, 50, 1000])
def test_batch_plan_covers_every_text_once(budget: int | None) -> None:
    lengths = np.random.default_rng(0).integers(1, 300, size=257)
    lengths[:100] = 7  # one common length: its texts share unpadded batches
    batches = plan_batches(lengths, 16, budget, sort_by_length=True)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(257))
    for b in batches:
        assert len(b) <= max(16, (budget or 0) // int(lengths[b].max()))
    for b, nxt in zip(batches[:-1], batches[1:], strict=True):  # rare lengths pooled up to 16 // 2
        assert len(b) >= 8 or len(set(lengths[nxt])) == 1
    n_seven = int((lengths == 7).sum())  # a remainder under 16 // 2 may pool with shorter texts
    assert sum(len(b) for b in batches if set(lengths[b]) == {7}) >= n_seven - 7
    unsorted = plan_batches(lengths, 16, budget, sort_by_length=False)
    assert all(len(b) == 16 for b in unsorted[:-1])
