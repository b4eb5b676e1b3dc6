"""Siamese losses on embeddings we already hold: each sentence-transformers loss is built once without
a model and only its ``compute_loss_from_embeddings`` (the tensor math) runs, because
:class:`~embedlab.modules.siamese.SiameseModule` encodes texts itself (in length groups). Matryoshka
composes them with ST's ``shrink`` (ST's class patches a model's forward, which we do not have)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from embedlab.errors import ConfigError

log = logging.getLogger(__name__)

PairLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@functools.cache
def _st_loss(name: str, **kwargs: Any) -> Any:
    """One instance per (ST loss class, settings); the model slot stays empty (never used)."""
    from sentence_transformers.sentence_transformer import losses

    return getattr(losses, name)(None, **kwargs)


def cosine_similarity_loss(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SBERT's STS regression (ST ``CosineSimilarityLoss``): MSE(cos(a, b), label in [0, 1]).
    emb_a, emb_b: (B, D); labels: (B,)."""
    return _st_loss("CosineSimilarityLoss").compute_loss_from_embeddings([emb_a, emb_b], labels)


def cosent_loss(
    emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor, scale: float = 20.0
) -> torch.Tensor:
    """CoSENT (Su, 2022; ST ``CoSENTLoss``): log(1 + sum exp(scale * (cos_j - cos_i))) over pairs
    with label_i > label_j; only the order of the labels matters. emb_*: (B, D); labels: (B,)."""
    return _st_loss("CoSENTLoss", scale=float(scale)).compute_loss_from_embeddings([emb_a, emb_b], labels)


def _gather_across_ranks(anchors: torch.Tensor, n_blocks: int) -> bool:
    """True under DDP when every rank's (B, 1 + n_neg) batch has the same shape, as the all-gather
    needs; otherwise (a short last batch, fewer mined negatives) every rank alike uses local negatives."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return False
    shape = torch.tensor([len(anchors), n_blocks], device=anchors.device)
    shapes = [torch.zeros_like(shape) for _ in range(dist.get_world_size())]
    dist.all_gather(shapes, shape)
    if all(torch.equal(s, shape) for s in shapes):
        return True
    log.warning("MNRL batch shapes differ across ranks %s: this step uses local negatives only", shapes)
    return False


def multiple_negatives_ranking_loss(
    anchors: torch.Tensor, candidates: torch.Tensor, scale: float = 20.0
) -> torch.Tensor:
    """InfoNCE with in-batch (+ mined hard) negatives (ST ``MultipleNegativesRankingLoss``).

    anchors: (B, D); candidates: (B * (1 + n_neg), D), the B positives, then blocks of B hard
    negatives. Under DDP ST gathers both from every rank with gradients (``gather_across_devices``):
    world_size x the negatives, as one big batch would have.
    """
    n = len(anchors)
    if n == 0 or len(candidates) % n:
        raise ValueError(f"candidates ({len(candidates)}) must be whole blocks of the {n} anchors")
    blocks = candidates.split(n)  # positives, then one block of B per hard-negative column
    gather = _gather_across_ranks(anchors, len(blocks))
    loss = _st_loss("MultipleNegativesRankingLoss", scale=float(scale), gather_across_devices=gather)
    return loss.compute_loss_from_embeddings([anchors, *blocks], None)


PAIR_LOSSES: dict[str, Callable[[float], PairLoss]] = {  # name -> scale -> loss on scored pairs
    "cosine": lambda scale: cosine_similarity_loss,
    "cosent": lambda scale: functools.partial(cosent_loss, scale=scale),
}
RANKING_LOSSES: dict[str, Callable[[float], PairLoss]] = {  # (query, positive[, negatives]) losses
    "mnrl": lambda scale: functools.partial(multiple_negatives_ranking_loss, scale=scale),
}


def _lookup(table: dict[str, Callable[[float], PairLoss]], kind: str, name: str, scale: float) -> PairLoss:
    if name not in table:
        raise ConfigError(f"Unknown {kind} loss '{name}'. Choose one of {tuple(table)}.")
    return table[name](scale)


def pair_loss(name: str, scale: float = 20.0) -> PairLoss:
    return _lookup(PAIR_LOSSES, "pair", name, scale)


def ranking_loss(name: str, scale: float = 20.0) -> PairLoss:
    return _lookup(RANKING_LOSSES, "ranking", name, scale)


class MatryoshkaLoss:
    """Matryoshka Representation Learning (Kusupati et al., 2022), so truncated embeddings stay close to
    the full ones: sum over d of ``weight_d * base(shrink(emb_a, d), shrink(emb_b, d), *rest)``, ``base``
    a pair loss ``(emb_a, emb_b, labels)`` or a ranking loss ``(anchors, candidates)``; ST's rules (weights
    1, dims largest first). tests/test_matryoshka.py checks the values against ST's class."""

    def __init__(
        self, base: Callable[..., torch.Tensor], dims: Sequence[int], weights: Sequence[float] | None = None
    ) -> None:
        dims = [int(d) for d in dims or ()]
        if not dims or any(d < 1 for d in dims):
            raise ConfigError(
                f"objective.matryoshka_dims must be a non-empty list of positive sizes (e.g. [384, 256, 128, 64]), "
                f"got {list(dims)}; null turns Matryoshka training off."
            )
        if len(set(dims)) != len(dims):
            raise ConfigError(f"objective.matryoshka_dims holds a size twice: {dims}.")
        weights = [1.0] * len(dims) if weights is None else [float(w) for w in weights]
        if len(weights) != len(dims):
            raise ConfigError(
                f"objective.matryoshka_weights has {len(weights)} values for {len(dims)} matryoshka_dims; "
                f"give one weight per size, or null for all 1."
            )
        pairs = sorted(zip(dims, weights, strict=True), key=lambda p: -p[0])  # largest first, as ST
        self.base, self.dims, self.weights = base, tuple(d for d, _ in pairs), tuple(w for _, w in pairs)

    def check_dimension(self, full: int) -> None:
        """Reject sizes the model cannot give; warn when the full size is not trained."""
        too_big = [d for d in self.dims if d > full]
        if too_big:
            raise ConfigError(
                f"objective.matryoshka_dims={list(self.dims)} asks for {too_big} dimensions but the model gives "
                f"{full}. Use sizes <= {full}, e.g. objective.matryoshka_dims=[{full},{full // 2},{full // 4}]."
            )
        if full not in self.dims:
            msg = "objective.matryoshka_dims=%s leaves out the model's full size %d: the untruncated %s"
            why = "embedding is then never trained directly (sentence-transformers warns the same)."
            log.warning(msg, list(self.dims), full, why)

    def per_dimension(self, emb_a: torch.Tensor, emb_b: torch.Tensor, *rest) -> dict[int, torch.Tensor]:
        """The unweighted base loss at each size (ST's ``shrink``: first d coordinates, L2-normalised)."""
        from sentence_transformers.sentence_transformer.losses.matryoshka import shrink

        return {d: self.base(shrink(emb_a, d), shrink(emb_b, d), *rest) for d in self.dims}

    def __call__(self, emb_a: torch.Tensor, emb_b: torch.Tensor, *rest) -> torch.Tensor:
        parts = self.per_dimension(emb_a, emb_b, *rest)
        return torch.stack([w * parts[d] for d, w in zip(self.dims, self.weights, strict=True)]).sum()

    def __repr__(self) -> str:
        name = getattr(self.base, "func", self.base)
        return f"MatryoshkaLoss({getattr(name, '__name__', name)}, dims={self.dims}, weights={self.weights})"


def with_matryoshka(
    loss: Callable[..., torch.Tensor], dims: Sequence[int] | None, weights: Sequence[float] | None = None
) -> Callable[..., torch.Tensor]:
    """``loss`` wrapped in a :class:`MatryoshkaLoss` over ``dims``; unchanged when ``dims`` is None."""
    return MatryoshkaLoss(loss, dims, weights) if dims is not None else loss
