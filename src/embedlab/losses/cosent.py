"""CoSENT (Su, 2022): a ranking loss over all pairs of pairs in the batch.

For pairs i, j with label_i > label_j it penalises cos_j > cos_i:
``log(1 + sum exp(scale * (cos_j - cos_i)))``. It only uses the order of the labels, so
the score range does not matter. Same math as sentence-transformers' ``CoSENTLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosent_loss(
    emb_a: torch.Tensor, emb_b: torch.Tensor, labels: torch.Tensor, scale: float = 20.0
) -> torch.Tensor:
    """emb_a, emb_b: (B, D); labels: (B,)."""
    cos = F.cosine_similarity(emb_a, emb_b, dim=-1) * scale  # (B,)
    diff = cos[None, :] - cos[:, None]  # (B, B): diff[i, j] = cos_j - cos_i
    ordered = labels[:, None] > labels[None, :]  # (B, B): label_i > label_j
    diff = diff.masked_fill(~ordered, float("-inf")).flatten()
    zero = torch.zeros(1, dtype=diff.dtype, device=diff.device)  # the "1 +" inside the log
    return torch.logsumexp(torch.cat([zero, diff]), dim=0)
