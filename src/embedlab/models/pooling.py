"""The pooling axis: its vocabulary, its checks, its module, and the chain run after the transformer.
A mode sentence-transformers' ``Pooling`` knows is one ``POOLING_MODES`` entry plus its
``configs/pooling/<mode>.yaml``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from embedlab.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from sentence_transformers.models import Pooling

POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "weightedmean")
# fastText has a vector per word and nothing else: no [CLS] token, no positions to weight
FASTTEXT_POOLINGS: tuple[str, ...] = ("mean", "max")


def check_pooling(mode: str, model_kind: str = "transformer") -> str:
    """``mode`` if a ``model_kind`` ("transformer" | "fasttext") encoder can pool that way."""
    if model_kind == "fasttext" and mode not in FASTTEXT_POOLINGS:
        raise ConfigError(
            f"pooling={mode} does not apply to model=fasttext: it has no [CLS] token or token "
            f"positions, only word vectors. Fix: pooling=mean (the fastText sentence vector) or pooling=max."
        )
    if mode not in POOLING_MODES:
        raise ConfigError(f"Unknown pooling '{mode}'. Choose one of {POOLING_MODES}.")
    return mode


def build_pooling(dim: int, mode: str) -> Pooling:
    from sentence_transformers.models import Pooling

    return Pooling(dim, pooling_mode=check_pooling(mode))


def apply_head(modules: Iterable[torch.nn.Module], features: dict[str, Any]) -> dict[str, Any]:
    """Run Pooling [-> Dense] [-> Normalize] as ``SentenceTransformer.forward`` does, for token
    embeddings made another way: ``token_embeddings`` (B, T, H) -> ``sentence_embedding`` (B, D)."""
    for module in modules:
        features = module(features)
    return features
