"""sentence-transformers' siamese losses on embeddings we already hold: each ST loss is built
once without a model and only its ``compute_loss_from_embeddings`` (the tensor math) is called,
because :class:`~embedlab.modules.siamese.SiameseModule` encodes texts itself (in length groups)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

log = logging.getLogger(__name__)


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
    """CoSENT (Su, 2022; ST ``CoSENTLoss``): log(1 + sum exp(scale * (cos_j - cos_i))) over
    pairs with label_i > label_j. Only the order of the labels matters. emb_*: (B, D); labels: (B,)."""
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
