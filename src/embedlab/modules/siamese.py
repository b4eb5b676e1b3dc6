"""SBERT-style siamese fine-tuning: both sides of a pair go through the same encoder. Scored
pairs (STS) train a pair loss and validate cosine Spearman (``val/<dataset>/spearman_cosine``);
(query, positive[, negatives]) batches train MNRL and are evaluated by retrieval after fit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from embedlab.losses import RANKING_LOSSES, MatryoshkaLoss, pair_loss, ranking_loss, with_matryoshka
from embedlab.modules.resume_hooks import TrainingModule

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


# 16 padded STS-B sentences carry 2.24 tokens per real token; a MiniLM CPU forward + backward costs
# ~45 ms a call plus ~0.8 ms a token (benchmarks/NOTES.md): an extra call is worth ~64 padded tokens.
GROUP_OVERHEAD_TOKENS = 64
# Under autocast (bf16-mixed) a token costs less and a call no less: wider groups pay (best of 64-1600, 1-2 threads).
GROUP_OVERHEAD_TOKENS_AUTOCAST = 400


def length_groups(lengths: torch.Tensor, overhead: int = GROUP_OVERHEAD_TOKENS) -> list[torch.Tensor]:
    """Row indices of groups of similar length (shortest first), minimising padded tokens +
    ``overhead`` per group: sorted rows cut into runs by dynamic programming. lengths: (B,)."""
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
    return [order[i:j].to(lengths.device) for i, j in reversed(bounds)]


class SiameseModule(TrainingModule):
    # fused AdamW: one kernel over all tensors; a CPU MiniLM step takes 13 ms instead of
    # 100 ms (foreach: 84 ms) for the same update (benchmarks/NOTES.md).
    fused_adamw = True

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
        """(B,) texts -> (B, D) embeddings. On CPU in groups of similar length (:func:`length_groups`),
        not padded to the longest text: pooling ignores padding, so only float rounding differs."""
        features = self.encoder.preprocess(texts)
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        mask = features.get("attention_mask")
        lengths = mask.sum(dim=1) if self._groupable(features, mask) else None  # (B,)
        autocast = torch.is_autocast_enabled(self.device.type)
        overhead = GROUP_OVERHEAD_TOKENS_AUTOCAST if autocast else GROUP_OVERHEAD_TOKENS
        groups = length_groups(lengths, overhead) if lengths is not None else []
        if len(groups) < 2:
            return self.encoder(features)["sentence_embedding"]
        words = self._word_embeddings(features)  # (B, T, H) or None
        parts = []
        for rows in groups:
            width = int(lengths[rows].max())
            sub = {k: v[rows, :width] if isinstance(v, torch.Tensor) else v for k, v in features.items()}
            if words is not None:
                sub["inputs_embeds"] = words[rows, :width]
                del sub["input_ids"]
            parts.append(self.encoder(sub)["sentence_embedding"])  # (b, D)
        order = torch.cat(groups)
        return torch.cat(parts)[torch.argsort(order)]  # back to input order

    def _word_embeddings(self, features: dict[str, Any]) -> torch.Tensor | None:
        """The batch's word embeddings in one lookup, shared by its length groups (``inputs_embeds``), so
        the dense (vocab, H) gradient is built once a step, not once a group (benchmarks/NOTES.md). Only
        for models whose embeddings treat ``inputs_embeds`` as their own lookup (positions differ on padding
        only, which attention and pooling ignore), and only while gradients flow."""
        auto = getattr(self.encoder[0], "auto_model", None)
        if not torch.is_grad_enabled() or getattr(getattr(auto, "config", None), "model_type", None) not in (
            "bert", "roberta", "xlm-roberta", "mpnet", "distilbert"
        ):  # fmt: skip
            return None
        table = auto.get_input_embeddings()
        return table(features["input_ids"]) if isinstance(table, torch.nn.Embedding) else None

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
            loss = self._loss(emb[:size], emb[size:])
        else:
            if "label" not in batch:
                raise ValueError(
                    f"The pair loss '{self.hparams['loss']}' needs scored pairs: use STS data or objective=mnrl."
                )
            size = len(batch["label"])
            emb = self.embed(list(batch["sentence1"]) + list(batch["sentence2"]))  # (2B, D)
            loss = self._loss(emb[:size], emb[size:], batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        return loss

    def _loss(self, *args: torch.Tensor) -> torch.Tensor:
        """The loss in float32, outside autocast: under ``precision=bf16-mixed`` bf16 cosines would round
        to ~0.004 (a scale-20 MNRL logit to ~0.08); the encoder's matmuls stay in bf16."""
        with torch.autocast(self.device.type, enabled=False):
            return self.loss_fn(*(a.float() if a.is_floating_point() else a for a in args))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        emb_a, emb_b = self.embed(batch["sentence1"]), self.embed(batch["sentence2"])
        with torch.autocast(self.device.type, enabled=False):  # float32 cosines, as in _loss
            cos = torch.nn.functional.cosine_similarity(emb_a.float(), emb_b.float())
        self._val_cos.append(cos.detach())
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
        rho = float(spearmanr(gold.cpu().numpy(), cos.cpu().numpy()).statistic) if len(gold) > 1 else math.nan
        self.log(f"val/{name}/spearman_cosine", rho, prog_bar=True, rank_zero_only=False)
