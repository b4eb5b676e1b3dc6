"""Cosine-similarity regression (SBERT's STS objective): MSE between cos(a, b) and the gold
score rescaled to [0, 1]. Same math as sentence-transformers' ``CosineSimilarityLoss``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity_loss(emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """emb_a, emb_b: (B, D); labels: (B,) in [0, 1]."""
    cos = F.cosine_similarity(emb_a, emb_b, dim=-1)  # (B,)
    return F.mse_loss(cos, labels.to(cos.dtype))
