"""SiameseModule.embed in length groups: the groups are an optimal partition, and the
embeddings, loss and gradients equal one padded batch (and sentence-transformers' encode)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.modules.siamese import SiameseModule, length_groups

TEXTS = [
    "A man is playing a guitar.",
    "Stocks fell sharply on Monday after the central bank raised interest rates by half a point, "
    "surprising analysts who had expected a pause until the end of the year.",
    "Hi.",
    "The cat sleeps.",
    "Three children are running across a wide green field while their parents watch from a bench "
    "under the old oak trees near the river bank.",
    "Rain.",
    "A woman slices an onion.",
    "The committee will publish its final report, including every dissenting opinion, next week.",
]


def brute_force_cost(lengths: list[int], overhead: int) -> int:
    """Cheapest cover of the sorted lengths by contiguous runs, over every set of cut points."""
    ls, n, best = sorted(lengths), len(lengths), None
    for k in range(n):
        for cuts in itertools.combinations(range(1, n), k):
            bounds = (0, *cuts, n)
            cost = sum((j - i) * ls[j - 1] + overhead for i, j in itertools.pairwise(bounds))
            best = cost if best is None else min(best, cost)
    return int(best)


@pytest.mark.parametrize("overhead", [0, 5, 20, 1000])
def test_length_groups_partition_rows_at_minimal_cost(overhead: int) -> None:
    lengths = torch.tensor([12, 3, 40, 7, 7, 25, 3, 60])
    groups = length_groups(lengths, overhead)
    rows = torch.cat(groups).tolist()
    assert sorted(rows) == list(range(len(lengths)))  # every row exactly once
    cost = sum(len(g) * int(lengths[g].max()) + overhead for g in groups)
    assert cost == brute_force_cost(lengths.tolist(), overhead)
    if overhead == 0:
        assert all(len(set(lengths[g].tolist())) == 1 for g in groups)  # no padding at all
    if overhead == 1000:
        assert len(groups) == 1


@pytest.fixture(params=["bert", "roberta", "mpnet", "distilbert"])
def module(tiny_model_dirs: dict[str, Path], request: pytest.FixtureRequest) -> SiameseModule:
    """Architectures whose groups share one word-embedding lookup (SiameseModule._word_embeddings)."""
    encoder, _ = build_encoder(
        EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs[request.param]), max_seq_length=64)
    )
    module = SiameseModule(encoder, loss="cosine")
    module.eval()  # no dropout: grouped and padded runs must agree exactly
    return module


def padded_embed(module: SiameseModule, texts: list[str]) -> torch.Tensor:
    features = module.encoder.preprocess(texts)
    return module.encoder(features)["sentence_embedding"]


def test_grouped_embeddings_equal_one_padded_batch_and_encode(module: SiameseModule) -> None:
    lengths = module.encoder.preprocess(TEXTS)["attention_mask"].sum(1)
    assert len(length_groups(lengths)) > 1  # the texts really are split
    with torch.no_grad():
        grouped, padded = module.embed(TEXTS), padded_embed(module, TEXTS)
    reference = module.encoder.encode(TEXTS, convert_to_tensor=True, batch_size=len(TEXTS))
    torch.testing.assert_close(grouped, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grouped, reference, atol=1e-5, rtol=1e-5)


def test_training_step_loss_and_gradients_equal_padded_two_forward_step(module: SiameseModule) -> None:
    batch = {"sentence1": TEXTS[:4], "sentence2": TEXTS[4:], "label": torch.tensor([0.1, 0.9, 0.4, 0.6])}
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no trainer attached
    loss = module.training_step(batch, 0)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    module.zero_grad(set_to_none=True)
    # the step before length groups: each side padded to its longest text, two forwards
    emb_a, emb_b = padded_embed(module, batch["sentence1"]), padded_embed(module, batch["sentence2"])
    ref_loss = module.loss_fn(emb_a, emb_b, batch["label"])
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-5)
    assert grads
    for name, param in module.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(grads[name], param.grad, atol=1e-5, rtol=1e-4, msg=name)
