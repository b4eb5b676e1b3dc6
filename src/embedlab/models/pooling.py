"""The pooling axis: its vocabulary, its checks, its module, and the chain that runs after the transformer.

Every place that needs a pooling fact asks here: the encoder builder, fastText (which
has word vectors only, so no [CLS] or position-weighted pooling), the encode package
(fast path, pooling sharing), the size study. Adding a pooling mode is one entry in
``POOLING_MODES`` plus its ``configs/pooling/<mode>.yaml``, as long as
sentence-transformers' ``Pooling`` knows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from embedlab.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from sentence_transformers.models import Pooling

PoolingMode = Literal["mean", "cls", "max", "weightedmean"]
POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "weightedmean")
# fastText has a vector per word and nothing else: no [CLS] token, no positions to weight
FASTTEXT_POOLINGS: tuple[str, ...] = ("mean", "max")


def check_pooling(mode: str, model_kind: str = "transformer") -> str:
    """``mode`` if a ``model_kind`` encoder ("transformer" | "fasttext") can pool that way;
    a ConfigError naming the choices otherwise."""
    if model_kind == "fasttext" and mode not in FASTTEXT_POOLINGS:
        raise ConfigError(
            f"pooling={mode} does not apply to model=fasttext: it has no [CLS] token or token "
            f"positions, only word vectors. Fix: pooling=mean (the fastText sentence vector) or pooling=max."
        )
    if mode not in POOLING_MODES:
        raise ConfigError(f"Unknown pooling '{mode}'. Choose one of {POOLING_MODES}.")
    return mode


def build_pooling(dim: int, mode: str) -> Pooling:
    """sentence-transformers' Pooling module over ``dim``-wide token embeddings."""
    from sentence_transformers.models import Pooling

    return Pooling(dim, pooling_mode=check_pooling(mode))


def apply_head(modules: Iterable[torch.nn.Module], features: dict[str, Any]) -> dict[str, Any]:
    """Run the modules after the transformer (Pooling [-> Dense] [-> Normalize]) on ``features``.

    ``features`` holds ``token_embeddings`` (B, T, H) and ``attention_mask`` (B, T), as the
    transformer returns them; the result holds ``sentence_embedding`` (B, D). This is what
    ``SentenceTransformer.forward`` does after its first module, so a caller that produces
    token embeddings its own way (bf16 batches, ONNX, one pass for several poolings) gets
    exactly what ``model.encode`` gives. ``modules``: ``list(model)[1:]`` of a SentenceTransformer.
    """
    for module in modules:
        features = module(features)
    return features
