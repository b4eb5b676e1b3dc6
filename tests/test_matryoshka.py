"""MatryoshkaLoss: the weighted sum of the base loss at each truncation, equal to
sentence-transformers' MatryoshkaLoss on the same embeddings, and trainable end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedlab.errors import ConfigError
from embedlab.losses import MatryoshkaLoss, pair_loss, ranking_loss, with_matryoshka

DIMS = [32, 16, 8]
WEIGHTS = [1.0, 0.5, 2.0]


class _FixedEmbeddings(torch.nn.Module):
    """Stands in for a SentenceTransformer: returns precomputed embeddings per call."""

    def __init__(self, *embs: torch.Tensor) -> None:
        super().__init__()
        self.embs = list(embs)

    def forward(self, features):  # noqa: ARG002 - features are ignored
        return {"sentence_embedding": self.embs.pop(0)}

    def get_embedding_dimension(self) -> int:
        return 32


def _batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(12, 32, generator=g), torch.randn(12, 32, generator=g), torch.rand(12, generator=g)


@pytest.mark.parametrize("name", ["cosine", "cosent"])
def test_weighted_sum_of_truncations(name: str) -> None:
    a, b, y = _batch(0)
    base = pair_loss(name)
    loss = with_matryoshka(base, DIMS, WEIGHTS)
    by_hand = sum(w * base(a[:, :d], b[:, :d], y) for d, w in zip(DIMS, WEIGHTS, strict=True))
    torch.testing.assert_close(loss(a, b, y), by_hand)  # cosine losses ignore the renormalisation
    assert with_matryoshka(base, None) is base


@pytest.mark.parametrize(
    ("name", "st_loss"),
    [("cosine", "CosineSimilarityLoss"), ("cosent", "CoSENTLoss"), ("mnrl", "MultipleNegativesRankingLoss")],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_sentence_transformers(name: str, st_loss: str, seed: int) -> None:
    import sentence_transformers.losses as st

    a, b, y = _batch(seed)
    if name == "cosent":
        y = torch.randint(0, 6, (12,), generator=torch.Generator().manual_seed(seed)).float()
    stub = _FixedEmbeddings(a, b)  # ST's MatryoshkaLoss encodes once and reuses the output per size
    base_ref = getattr(st, st_loss)(stub)
    reference = st.MatryoshkaLoss(stub, base_ref, DIMS, matryoshka_weights=WEIGHTS)([{}, {}], y)
    if name == "mnrl":
        ours = MatryoshkaLoss(ranking_loss("mnrl"), DIMS, WEIGHTS)(a, b)
    else:
        ours = MatryoshkaLoss(pair_loss(name), DIMS, WEIGHTS)(a, b, y)
    torch.testing.assert_close(ours, reference)


def test_gradients_flow_through_every_truncation() -> None:
    a, b, y = _batch(3)
    a.requires_grad_(True)
    MatryoshkaLoss(pair_loss("cosent"), [8])(a, b, y).backward()
    assert a.grad is not None
    assert a.grad[:, 8:].abs().max() == 0 and a.grad[:, :8].abs().max() > 0  # only the kept dims learn
    per = MatryoshkaLoss(pair_loss("cosent"), [32, 8]).per_dimension(a, b, y)
    assert set(per) == {32, 8}
    torch.testing.assert_close(per[8], pair_loss("cosent")(F.normalize(a[:, :8], dim=-1), b[:, :8], y))


def test_bad_settings_are_clear() -> None:
    base = pair_loss("cosent")
    with pytest.raises(ConfigError, match="non-empty list of positive sizes"):
        MatryoshkaLoss(base, [])
    with pytest.raises(ConfigError, match="non-empty list of positive sizes"):
        MatryoshkaLoss(base, [64, 0])
    with pytest.raises(ConfigError, match="2 values for 3 matryoshka_dims"):
        MatryoshkaLoss(base, [64, 32, 16], [1.0, 1.0])
    with pytest.raises(ConfigError, match="holds a size twice"):
        MatryoshkaLoss(base, [64, 64])
    with pytest.raises(ConfigError, match=r"asks for \[384\] dimensions but the model gives 32"):
        MatryoshkaLoss(base, [384, 16]).check_dimension(32)
    loss = MatryoshkaLoss(base, [8, 32, 16], [3.0, 1.0, 2.0])
    assert loss.dims == (32, 16, 8) and loss.weights == (1.0, 2.0, 3.0)  # sorted largest first, as ST


def test_fast_dev_run_with_cosent_matryoshka(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    cfg = make_cfg("model=tiny_bert", "objective=cosent_matryoshka", "objective.matryoshka_dims=[32,16,8]",
                   "debug=fast", "data=lee", "logger=none")  # fmt: skip
    metrics, objects = train(cfg)
    module = objects["module"]
    assert isinstance(module.loss_fn, MatryoshkaLoss) and module.loss_fn.dims == (32, 16, 8)
    assert module.hparams["matryoshka_dims"] == [32, 16, 8]
    assert -1.0 <= metrics["test/lee/spearman_cosine"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["config"]["objective"]["name"] == (
        "cosent_matryoshka"
    )


def test_mnrl_with_matryoshka_trains(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    cfg = make_cfg("model=tiny_bert", "objective=mnrl", "objective.matryoshka_dims=[32,16]", "data=retrieval_mock",
                   "trainer.max_epochs=1", "logger=none")  # fmt: skip
    metrics, objects = train(cfg)
    assert isinstance(objects["module"].loss_fn, MatryoshkaLoss)
    assert 0.0 <= metrics["test/mock/ndcg@10"] <= 1.0


def test_matryoshka_larger_than_model_fails_before_training(make_cfg) -> None:
    from embedlab.jobs import train

    with pytest.raises(ConfigError, match="gives 32"):
        train(
            make_cfg(
                "model=tiny_bert", "objective=cosent_matryoshka", "debug=fast", "data=lee", "logger=none"
            )
        )
