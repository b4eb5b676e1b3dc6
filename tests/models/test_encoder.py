"""The encoder: every architecture builds, pooling does what it says, saved models reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.models.encoder import EncoderSpec, build_encoder

TEXTS = ["A man is playing a guitar.", "Short.", "The quick brown fox jumps over the lazy dog again."]


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "xlm-roberta", "mpnet"])
def test_every_architecture_encodes(arch: str, tiny_model_dirs: dict[str, Path]) -> None:
    model, resolved = build_encoder(
        EncoderSpec(name=arch, name_or_path=str(tiny_model_dirs[arch]), max_seq_length=64)
    )
    emb = model.encode(TEXTS, convert_to_numpy=True)
    assert emb.shape == (3, 32) and np.isfinite(emb).all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # normalised
    pooler = getattr(model[0].auto_model, "pooler", None)  # unused: frozen (DDP-safe), kept for saving
    assert pooler is None or not any(p.requires_grad for p in pooler.parameters())


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pooling_matches_hand_computation(mode: str, tiny_model_dirs: dict[str, Path]) -> None:
    model, _ = build_encoder(
        EncoderSpec(
            name="b",
            name_or_path=str(tiny_model_dirs["bert"]),
            pooling=mode,
            normalize=False,
            max_seq_length=64,
        )
    )
    features = model.preprocess(TEXTS)
    with torch.inference_mode():
        tokens = (
            model[0]
            .auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"])
            .last_hidden_state
        )
        mask = features["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        expected = {
            "mean": (tokens * mask).sum(1) / mask.sum(1),
            "cls": tokens[:, 0],
            "max": tokens.masked_fill(mask == 0, -1e9).max(1).values,
        }[mode]
    got = model.encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_projection_changes_dimension(tiny_model_dirs: dict[str, Path]) -> None:
    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), projection_dim=8, max_seq_length=64)
    )
    assert model.encode(TEXTS).shape == (3, 8)


def test_saved_model_reloads_identically(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model, _ = build_encoder(
        EncoderSpec(name="r", name_or_path=str(tiny_model_dirs["roberta"]), pooling="max", max_seq_length=64)
    )
    model.save(str(tmp_path / "m"))
    again = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(again.encode(TEXTS), model.encode(TEXTS), atol=1e-6)


def test_packaged_minilm_matches_its_own_checkpoint(minilm) -> None:
    """Assembling from modules reproduces the published model's embeddings."""
    from sentence_transformers import SentenceTransformer

    from embedlab.models.resolve import resolve_model

    original = SentenceTransformer(str(resolve_model(None, packaged="minilm").path), device="cpu")
    np.testing.assert_allclose(minilm.encode(TEXTS), original.encode(TEXTS), atol=1e-5)


def test_unknown_pooling_and_too_long_limit(tiny_model_dirs: dict[str, Path]) -> None:
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown pooling"):
        build_encoder(EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), pooling="median"))
    with pytest.raises(ConfigError, match="exceeds the 128 positions"):
        build_encoder(EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=4096))
