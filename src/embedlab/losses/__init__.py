"""Siamese losses on embeddings: sentence-transformers' losses (``wrapped``) and Matryoshka over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch

from embedlab.errors import ConfigError
from embedlab.losses.matryoshka import MatryoshkaLoss
from embedlab.losses.wrapped import cosent_loss, cosine_similarity_loss, multiple_negatives_ranking_loss

PairLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
PAIR_LOSSES = ("cosine", "cosent")
RANKING_LOSSES = ("mnrl",)


def pair_loss(name: str, scale: float = 20.0) -> PairLoss:
    """The scored-pair loss called ``name`` (``cosine`` or ``cosent``)."""
    if name == "cosine":
        return cosine_similarity_loss
    if name == "cosent":
        return partial(cosent_loss, scale=scale)
    raise ConfigError(f"Unknown pair loss '{name}'. Choose one of {PAIR_LOSSES}.")


def ranking_loss(name: str, scale: float = 20.0) -> PairLoss:
    """The (query, positive[, negatives]) loss called ``name`` (``mnrl``)."""
    if name == "mnrl":
        return partial(multiple_negatives_ranking_loss, scale=scale)
    raise ConfigError(f"Unknown ranking loss '{name}'. Choose one of {RANKING_LOSSES}.")


def with_matryoshka(
    loss: Callable[..., torch.Tensor], dims: Sequence[int] | None, weights: Sequence[float] | None = None
) -> Callable[..., torch.Tensor]:
    """``loss`` wrapped in a :class:`MatryoshkaLoss` over ``dims``; unchanged when ``dims`` is None."""
    return MatryoshkaLoss(loss, dims, weights) if dims is not None else loss
