"""Matryoshka Representation Learning (Kusupati et al., 2022) around any siamese loss, so
truncated embeddings (``dimension=d128``) stay close to the full ones in quality.

ST's ``MatryoshkaLoss`` patches a model's forward; we hold embeddings, so this composes our
wrapped ST losses with ST's own ``shrink`` and ST's rules (weights 1, dims largest first);
tests/test_matryoshka.py checks the values against ST's class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from embedlab.errors import ConfigError

log = logging.getLogger(__name__)


class MatryoshkaLoss:
    """Sum over d of ``weight_d * base(shrink(emb_a, d), shrink(emb_b, d), *rest)``; ``base`` is a
    pair loss ``(emb_a, emb_b, labels)`` or a ranking loss ``(anchors, candidates)``."""

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
