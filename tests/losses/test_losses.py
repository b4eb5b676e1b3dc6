"""Our pure-tensor losses equal sentence-transformers' loss classes on the same embeddings."""

from __future__ import annotations

import pytest
import torch

from embedlab.losses import pair_loss
from embedlab.losses.cosent import cosent_loss
from embedlab.losses.cosine_similarity import cosine_similarity_loss


class _FixedEmbeddings(torch.nn.Module):
    """Stands in for a SentenceTransformer: returns precomputed embeddings per call."""

    def __init__(self, *embs: torch.Tensor) -> None:
        super().__init__()
        self.embs = list(embs)

    def forward(self, features):  # noqa: ARG002 - features are ignored
        return {"sentence_embedding": self.embs.pop(0)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_loss_matches_sentence_transformers(seed: int) -> None:
    from sentence_transformers.losses import CosineSimilarityLoss

    g = torch.Generator().manual_seed(seed)
    a, b, y = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g), torch.rand(16, generator=g)
    reference = CosineSimilarityLoss(_FixedEmbeddings(a, b))([{}, {}], y)
    torch.testing.assert_close(cosine_similarity_loss(a, b, y), reference)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosent_matches_sentence_transformers(seed: int) -> None:
    from sentence_transformers.losses import CoSENTLoss

    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    y = torch.randint(0, 6, (16,), generator=g).float()  # ties included
    reference = CoSENTLoss(_FixedEmbeddings(a, b), scale=20.0)([{}, {}], y)
    torch.testing.assert_close(cosent_loss(a, b, y, scale=20.0), reference)


def test_losses_have_gradients_and_unknown_name_fails() -> None:
    a = torch.randn(4, 8, requires_grad=True)
    pair_loss("cosent")(a, torch.randn(4, 8), torch.tensor([0.1, 0.5, 0.9, 0.3])).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match="Unknown pair loss"):
        pair_loss("triplet")


@pytest.mark.parametrize("n_neg", [0, 1, 2])
def test_mnrl_matches_sentence_transformers(n_neg: int) -> None:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from embedlab.losses.multiple_negatives_ranking import multiple_negatives_ranking_loss

    g = torch.Generator().manual_seed(n_neg)
    a, p = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    negs = [torch.randn(8, 16, generator=g) for _ in range(n_neg)]
    reference = MultipleNegativesRankingLoss(_FixedEmbeddings(a, p, *negs), scale=20.0)(
        [{}] * (2 + n_neg), None
    )
    ours = multiple_negatives_ranking_loss(a, torch.cat([p, *negs]), scale=20.0)
    torch.testing.assert_close(ours, reference)
