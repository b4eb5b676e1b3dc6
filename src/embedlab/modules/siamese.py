"""SBERT-style siamese fine-tuning as a LightningModule.

Both sides of a pair go through the same encoder. Scored pairs (STS) train with a pair
loss against the gold score, and validation logs cosine Spearman under
``val/<dataset>/spearman_cosine``. (query, positive[, negatives]) batches train with
MultipleNegativesRankingLoss; their validation is a retrieval evaluation run after fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning as L
import torch

from embedlab.losses import RANKING_LOSSES, MatryoshkaLoss, pair_loss, ranking_loss, with_matryoshka
from embedlab.modules.resume_hooks import ResumableTraining

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


# Padding is most of what a batch of random sentences holds: 16 STS-B train sentences
# padded to their longest carry 2.24 tokens per real token. A forward + backward of
# MiniLM on one CPU thread costs ~45 ms per call plus ~0.8 ms per token (benchmarks/
# NOTES.md), so an extra call is worth ~64 tokens of padding: the price of a group below.
GROUP_OVERHEAD_TOKENS = 64


def length_groups(lengths: torch.Tensor, overhead: int = GROUP_OVERHEAD_TOKENS) -> list[torch.Tensor]:
    """Split rows into groups of similar length, minimising padded tokens + ``overhead`` per group.

    ``lengths`` (B,) are token counts. Rows are sorted by length and cut into contiguous
    runs by dynamic programming (a group of rows i..j-1 costs (j - i) * length[j-1] +
    overhead). Returns the row indices of each group, shortest texts first.
    """
    order = torch.argsort(lengths.cpu(), stable=True)
    ls = lengths.cpu()[order].tolist()
    n = len(ls)
    best = [0.0] + [float("inf")] * n  # best[j]: cheapest cover of the j shortest rows
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        width = ls[j - 1]
        for i in range(j):
            cost = best[i] + (j - i) * width + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds, j = [], n
    while j > 0:
        bounds.append((cut[j], j))
        j = cut[j]
    device = lengths.device
    return [order[i:j].to(device) for i, j in reversed(bounds)]


class SiameseModule(ResumableTraining, L.LightningModule):
    def __init__(
        self,
        encoder: SentenceTransformer,
        *,
        loss: str = "cosine",
        lr: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        cosent_scale: float = 20.0,
        dataset_name: str = "sts",
        matryoshka_dims: list[int] | None = None,
        matryoshka_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder
        self.ranking = loss in RANKING_LOSSES
        self.loss_fn = with_matryoshka(  # matryoshka_dims: the loss at every truncation, summed
            ranking_loss(loss, cosent_scale) if self.ranking else pair_loss(loss, scale=cosent_scale),
            matryoshka_dims,
            matryoshka_weights,
        )
        if isinstance(self.loss_fn, MatryoshkaLoss):
            self.loss_fn.check_dimension(int(encoder.get_embedding_dimension()))
        self._val_cos: list[torch.Tensor] = []
        self._val_gold: list[torch.Tensor] = []

    def embed(self, texts: list[str]) -> torch.Tensor:
        """(B,) texts -> (B, D) sentence embeddings, with gradients when training.

        On CPU the texts run in groups of similar length (:func:`length_groups`) rather than
        as one batch padded to its longest text; every pooling mode ignores padding, so the
        embeddings are the same up to float rounding and the loss sees them in input order.
        """
        features = self.encoder.preprocess(texts)
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        mask = features.get("attention_mask")
        if not self._groupable(features, mask):
            return self.encoder(features)["sentence_embedding"]
        lengths = mask.sum(dim=1)  # (B,)
        groups = length_groups(lengths)
        if len(groups) == 1:
            return self.encoder(features)["sentence_embedding"]
        parts = []
        for rows in groups:
            width = int(lengths[rows].max())
            sub = {k: v[rows, :width] if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            parts.append(self.encoder(sub)["sentence_embedding"])  # (b, D)
        order = torch.cat(groups)
        return torch.cat(parts)[torch.argsort(order)]  # back to input order

    def _groupable(self, features: dict[str, Any], mask: torch.Tensor | None) -> bool:
        """Length groups pay off where compute scales with tokens (CPU; on a GPU the extra
        launches cost more than the padding) and are safe only for right-padded token
        tensors that all share the attention mask's (B, T) shape."""
        if self.device.type != "cpu" or mask is None or mask.ndim != 2 or len(mask) < 2:
            return False
        if getattr(getattr(self.encoder, "tokenizer", None), "padding_side", "right") != "right":
            return False
        return all(v.shape == mask.shape for v in features.values() if isinstance(v, torch.Tensor))

    def forward(self, texts: list[str]) -> torch.Tensor:
        return self.embed(texts)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.ranking:
            if "anchor" not in batch:
                raise ValueError("A ranking loss (mnrl) needs (query, positive) batches: use retrieval data.")
            size = len(batch["anchor"])
            # one embed call for every text of the batch: fewer, better-filled length groups
            emb = self.embed(
                batch["anchor"] + batch["positive"] + [t for neg in batch["negatives"] for t in neg]
            )  # (B + B*(1+n), D)
            loss = self.loss_fn(emb[:size], emb[size:])
        else:
            if "label" not in batch:
                raise ValueError(
                    f"The pair loss '{self.hparams['loss']}' needs scored pairs: use STS data or objective=mnrl."
                )
            size = len(batch["label"])
            emb = self.embed(list(batch["sentence1"]) + list(batch["sentence2"]))  # (2B, D)
            loss = self.loss_fn(emb[:size], emb[size:], batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        emb_a, emb_b = self.embed(batch["sentence1"]), self.embed(batch["sentence2"])
        self._val_cos.append(torch.nn.functional.cosine_similarity(emb_a, emb_b).detach().float())
        self._val_gold.append(batch["label"].detach().float())

    def on_validation_epoch_end(self) -> None:
        from scipy.stats import spearmanr

        if not self._val_cos:
            return
        cos, gold = torch.cat(self._val_cos), torch.cat(self._val_gold)
        self._val_cos.clear()
        self._val_gold.clear()
        if self.trainer.world_size > 1:  # Spearman is not a mean of shard Spearmans: gather all pairs
            cos, gold = self.all_gather(cos).flatten(), self.all_gather(gold).flatten()
        name = self.hparams["dataset_name"]
        rho = (
            float(spearmanr(gold.cpu().numpy(), cos.cpu().numpy()).statistic)
            if len(gold) > 1
            else float("nan")
        )
        self.log(f"val/{name}/spearman_cosine", rho, prog_bar=True, rank_zero_only=False)

    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_linear_schedule_with_warmup

        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            # As in SBERT: no weight decay on biases and LayerNorm weights.
            (
                no_decay if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name else decay
            ).append(param)

        # fused=True: one kernel over all tensors instead of a Python loop per tensor. On
        # CPU (torch 2.13) a MiniLM step takes 13 ms instead of 100 ms (foreach: 84 ms);
        # the update is the same AdamW (benchmarks/NOTES.md). Where torch has no fused
        # kernel for the parameters' device or dtype, torch's default implementation runs.
        def groups() -> list[dict[str, Any]]:  # fresh dicts: the optimizer writes its defaults into them
            return [
                {"params": decay, "weight_decay": self.hparams["weight_decay"]},
                {"params": no_decay, "weight_decay": 0.0},
            ]

        try:
            optimizer = torch.optim.AdamW(groups(), lr=self.hparams["lr"], fused=True)
        except RuntimeError:
            optimizer = torch.optim.AdamW(groups(), lr=self.hparams["lr"])
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(self.hparams["warmup_ratio"] * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, max(total, 1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
