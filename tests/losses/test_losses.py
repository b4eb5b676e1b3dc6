"""Our loss wrappers give sentence-transformers' loss classes' values (run through their forward)
on the same embeddings, and the hand-written formulas they replaced."""

from __future__ import annotations

import pytest
import torch

from embedlab.losses import cosent_loss, cosine_similarity_loss, multiple_negatives_ranking_loss, pair_loss


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

    g = torch.Generator().manual_seed(n_neg)
    a, p = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    negs = [torch.randn(8, 16, generator=g) for _ in range(n_neg)]
    reference = MultipleNegativesRankingLoss(_FixedEmbeddings(a, p, *negs), scale=20.0)(
        [{}] * (2 + n_neg), None
    )
    ours = multiple_negatives_ranking_loss(a, torch.cat([p, *negs]), scale=20.0)
    torch.testing.assert_close(ours, reference)


def test_same_numbers_as_the_hand_written_losses_they_replace() -> None:
    """The formulas embedlab carried before reusing ST: the stsb_sbert recipe's numbers must not move."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(5)
    a, b, y = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g), torch.rand(16, generator=g)
    cos = F.cosine_similarity(a, b, dim=-1)
    assert torch.equal(cosine_similarity_loss(a, b, y), F.mse_loss(cos, y))  # bit-identical
    diff = (cos[None, :] - cos[:, None]) * 20.0
    diff = diff.masked_fill(~(y[:, None] > y[None, :]), float("-inf")).flatten()
    torch.testing.assert_close(cosent_loss(a, b, y), torch.logsumexp(torch.cat([torch.zeros(1), diff]), 0))
    c = torch.cat([b, torch.randn(16, 8, generator=g)])
    logits = 20.0 * F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T
    torch.testing.assert_close(
        multiple_negatives_ranking_loss(a, c), F.cross_entropy(logits, torch.arange(16))
    )
    with pytest.raises(ValueError, match="whole blocks"):
        multiple_negatives_ranking_loss(a, c[:-1])


def _mnrl_rank(rank: int, world: int, init: str, out: str) -> None:
    """One DDP rank: its slice of the batch, MNRL through the wrapper (which gathers), loss + grads saved."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        a, p, n = torch.load(f"{out}/batch.pt")
        sl = slice(rank * 4, rank * 4 + 4)
        mine = [t[sl].clone().requires_grad_(True) for t in (a, p, n)]
        loss = multiple_negatives_ranking_loss(mine[0], torch.cat(mine[1:]))
        loss.backward()
        # unequal shapes (rank 1 one query short): no gather, each rank's own negatives only
        short = [t[sl][: 4 - rank] for t in (a, p, n)]
        local = multiple_negatives_ranking_loss(short[0], torch.cat(short[1:]))
        torch.save([loss.detach()] + [t.grad for t in mine] + [local], f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_mnrl_gathers_negatives_across_ddp_ranks(tmp_path) -> None:
    """Two gloo ranks with 4 queries each score against all 8 positives and 8 hard negatives:
    the mean rank loss and the DDP-averaged gradients equal one 8-query batch on one device."""
    import socket

    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(8, 16, generator=g) for _ in range(3))
    torch.save([a, p, n], tmp_path / "batch.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_mnrl_rank, args=(2, f"tcp://127.0.0.1:{port}", str(tmp_path)), nprocs=2, join=True)
    full = [t.clone().requires_grad_(True) for t in (a, p, n)]
    reference = multiple_negatives_ranking_loss(full[0], torch.cat(full[1:]))
    reference.backward()
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close((ranks[0][0] + ranks[1][0]) / 2, reference.detach())
    for i in range(3):  # DDP averages over ranks: local grad / world = full-batch grad of that slice
        torch.testing.assert_close(torch.cat([ranks[0][i + 1], ranks[1][i + 1]]) / 2, full[i].grad)
    for r in range(2):
        sl = slice(r * 4, r * 4 + 4 - r)
        torch.testing.assert_close(
            ranks[r][4], multiple_negatives_ranking_loss(a[sl], torch.cat([p[sl], n[sl]]))
        )
