"""One transformer pass fills the cache for every pooling of a sweep, with the embeddings
and cache keys each pooling's own encoder gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedlab.encode.cache import EmbeddingCache
from embedlab.encode.encoder import Encoder, EncodeSettings, prefetch_poolings
from embedlab.models.encoder import EncoderSpec, build_encoder

TEXTS = [f"sentence number {i} " * (i % 5 + 1) for i in range(30)] + ["sentence number 0 "]
MODES = ["mean", "cls", "max"]


def tiny(tiny_model_dirs: dict[str, Path], pooling: str, projection: int | None = None):
    spec = EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), pooling=pooling, max_seq_length=64,
                       projection_dim=projection)  # fmt: skip
    return build_encoder(spec)[0]


@pytest.mark.parametrize("backend", ["fast", "sentence-transformers"])
def test_prefetched_embeddings_equal_each_poolings_own(tiny_model_dirs, tmp_path: Path, backend: str) -> None:
    settings = EncodeSettings(backend=backend)  # type: ignore[arg-type]
    cache = EmbeddingCache(tmp_path)
    n = prefetch_poolings(Encoder(tiny(tiny_model_dirs, "mean"), settings, cache), [("texts", TEXTS)], MODES)
    assert n == len(TEXTS) and cache.stats.n_encoded == len(TEXTS)
    for mode in MODES:
        model = tiny(tiny_model_dirs, mode)
        reader = EmbeddingCache(tmp_path)
        got, stats = Encoder(model, settings, reader).encode_cached(TEXTS)
        own, _ = Encoder(model, settings).encode_cached(TEXTS)
        assert reader.stats.n_encoded == 0, f"{mode}: the job with this pooling would encode again"
        assert stats is not None and stats.n_texts == len(TEXTS)
        np.testing.assert_allclose(got, own, atol=1e-6)
    again = prefetch_poolings(
        Encoder(tiny(tiny_model_dirs, "cls"), settings, cache), [("texts", TEXTS)], MODES
    )
    assert again == 0  # everything is there


def test_encoder_with_projection_is_left_alone(tiny_model_dirs, tmp_path: Path) -> None:
    encoder = Encoder(tiny(tiny_model_dirs, "mean", projection=8), cache=EmbeddingCache(tmp_path))
    assert prefetch_poolings(encoder, [("texts", TEXTS)], MODES) == 0
    assert not any(tmp_path.rglob("*.npy"))


def test_sweep_jobs_of_other_poolings_encode_nothing(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    common = ["model=tiny_bert", "data=lee", "logger=none", "encode.share_poolings=[mean,cls,max]",
              f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    first, _ = evaluate(make_cfg(*common, "pooling=mean", task="evaluate", output_dir=tmp_path / "mean"))
    assert first["test/lee/n_texts_encoded"] > 0
    for mode in ("cls", "max"):
        other, _ = evaluate(make_cfg(*common, f"pooling={mode}", task="evaluate", output_dir=tmp_path / mode))
        assert other["test/lee/n_texts_encoded"] == 0
        alone, _ = evaluate(make_cfg(*common[:-1], f"pooling={mode}", f"paths.cache_dir={tmp_path / mode / 'c'}",
                                     task="evaluate", output_dir=tmp_path / f"{mode}_alone"))  # fmt: skip
        assert other["test/lee/spearman_cosine"] == pytest.approx(alone["test/lee/spearman_cosine"], abs=1e-6)
