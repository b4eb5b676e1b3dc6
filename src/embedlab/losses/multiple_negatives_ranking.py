"""MultipleNegativesRankingLoss (InfoNCE with in-batch negatives) for (query, positive[,
hard negatives]) batches: each query must score its own positive above every other
positive and every hard negative in the batch. Same math as sentence-transformers'
``MultipleNegativesRankingLoss`` (cosine similarity x scale, cross-entropy)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def multiple_negatives_ranking_loss(
    anchors: torch.Tensor, candidates: torch.Tensor, scale: float = 20.0
) -> torch.Tensor:
    """anchors: (B, D); candidates: (B * (1 + n_neg), D), the B positives first, in order."""
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    logits = scale * a @ c.T  # (B, B * (1 + n_neg)): positives on the diagonal
    labels = torch.arange(len(anchors), device=anchors.device)
    return F.cross_entropy(logits, labels)
