"""Matryoshka Representation Learning (Kusupati et al., 2022) around any siamese loss: the
base loss on the first d dimensions (renormalised) for each d in ``dims``, weighted and summed,
so truncated embeddings (``dimension=d128``) stay close to the full ones in quality.

ST's ``MatryoshkaLoss`` wraps a model's forward (it re-runs the base loss on a patched
``model.forward``); we hold embeddings, so this class composes our wrapped ST losses and uses
ST's own ``shrink`` (truncate, L2-normalise). Same rules as ST: weights default to 1, dims
sorted largest first; tests/test_matryoshka.py checks the values against ST's class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from embedlab.errors import ConfigError

log = logging.getLogger(__name__)


def shrink(embeddings: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, D) -> (B, dim): the first ``dim`` coordinates, L2-normalised (ST's ``shrink``)."""
    from sentence_transformers.sentence_transformer.losses.matryoshka import shrink as st_shrink

    return st_shrink(embeddings, dim)


class MatryoshkaLoss:
    """``loss(emb_a, emb_b, *rest)`` = sum over d of ``weight_d * base(shrink(emb_a, d), shrink(emb_b, d), *rest)``.

    ``base`` is a pair loss ``(emb_a, emb_b, labels)`` or a ranking loss ``(anchors,
    candidates)``: the first two arguments are embeddings, anything after is passed as is.
    """

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
        self.base = base
        self.dims = tuple(d for d, _ in pairs)
        self.weights = tuple(w for _, w in pairs)

    def check_dimension(self, full: int) -> None:
        """Reject sizes the model cannot give; warn when the full size is not trained."""
        too_big = [d for d in self.dims if d > full]
        if too_big:
            raise ConfigError(
                f"objective.matryoshka_dims={list(self.dims)} asks for {too_big} dimensions but the model gives "
                f"{full}. Use sizes <= {full}, e.g. objective.matryoshka_dims=[{full},{full // 2},{full // 4}]."
            )
        if full not in self.dims:
            log.warning(
                "objective.matryoshka_dims=%s leaves out the model's full size %d: the untruncated "
                "embedding is then never trained directly (sentence-transformers warns the same).",
                list(self.dims),
                full,
            )

    def per_dimension(self, emb_a: torch.Tensor, emb_b: torch.Tensor, *rest) -> dict[int, torch.Tensor]:
        """The unweighted base loss at each size."""
        return {d: self.base(shrink(emb_a, d), shrink(emb_b, d), *rest) for d in self.dims}

    def __call__(self, emb_a: torch.Tensor, emb_b: torch.Tensor, *rest) -> torch.Tensor:
        parts = self.per_dimension(emb_a, emb_b, *rest)
        return torch.stack([w * parts[d] for d, w in zip(self.dims, self.weights, strict=True)]).sum()

    def __repr__(self) -> str:
        name = getattr(self.base, "func", self.base)
        return f"MatryoshkaLoss({getattr(name, '__name__', name)}, dims={self.dims}, weights={self.weights})"
