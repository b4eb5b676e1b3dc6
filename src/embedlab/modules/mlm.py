"""Continued masked-LM training of a sentence encoder's backbone, then copied back into the encoder.
ST checkpoints (all-MiniLM-L6-v2) ship no MLM head, so one starts at random: we detect and say so,
since early loss and the perplexity before training then measure that head, not the encoder."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from embedlab.data.mlm import MLMCollator, masked_batches, tokenize_texts
from embedlab.modules.resume_hooks import TrainingModule

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadReport:
    """What the checkpoint lacked when loaded as a masked-LM model."""

    new_head_keys: tuple[str, ...]  # MLM head tensors initialised at random
    missing_backbone_keys: tuple[str, ...]  # encoder tensors initialised at random: a broken checkpoint
    unexpected_keys: tuple[str, ...]  # e.g. the pooler of an AutoModel checkpoint, unused by MLM

    @property
    def head_is_new(self) -> bool:
        return bool(self.new_head_keys)


def load_mlm_model(path: str | Path) -> tuple[Any, Any, HeadReport]:
    """Load ``AutoModelForMaskedLM`` and its tokenizer from a model folder; report a fresh head."""
    import transformers
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load table is replaced by the HeadReport log below
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(str(path), output_loading_info=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    prefix = f"{model.base_model_prefix}."
    backbone = set(model.base_model.state_dict())
    head, missing_backbone = [], []
    for key in sorted(info.get("missing_keys", [])):
        bare = key[len(prefix) :] if key.startswith(prefix) else key
        (missing_backbone if bare in backbone else head).append(key)
    report = HeadReport(tuple(head), tuple(missing_backbone), tuple(sorted(info.get("unexpected_keys", []))))
    if report.head_is_new:
        msg = (
            "MLM head newly initialised: %s ships no masked-LM head, so %d head tensors (%s) start at "
            "random. Early MLM loss and the perplexity before training measure this random head, "
            "not the encoder."
        )
        log.warning(msg, path, len(head), ", ".join(head))
    else:
        log.info("MLM head loaded from the checkpoint at %s.", path)
    if missing_backbone:
        msg = "%d encoder tensors are missing from %s and were initialised at random (%s ...): %s."
        why = f"the checkpoint does not match {type(model).__name__}"
        log.error(msg, len(missing_backbone), path, ", ".join(missing_backbone[:5]), why)
    return model, tokenizer, report


def masked_nll(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the masked tokens of a batch, and their count."""
    n = int((batch["labels"] != -100).sum())
    out = model(**batch)
    # HF's MLM loss is the mean over masked tokens; back to a sum so batches weigh by tokens.
    return out.loss * n if n else out.loss * 0.0, n


@torch.no_grad()
def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    mlm_probability: float = 0.15,
    seed: int = 0,
    batch_size: int = 32,
    max_length: int = 128,
    whole_word_mask: bool = False,
) -> float:
    """exp(mean NLL of the masked tokens); masks from a fresh ``seed``ed generator, so before and after
    training score the same tokens."""
    wwm = whole_word_mask
    tokens = tokenize_texts(
        tokenizer, texts, max_length=max_length, whole_word_mask=wwm, what="perplexity texts"
    )
    collate = MLMCollator(tokenizer, mlm_probability=mlm_probability, whole_word_mask=wwm, seed=seed)
    batches = masked_batches(collate, tokens, batch_size)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for batch in batches:
            nll, n = masked_nll(model, {k: v.to(device) for k, v in batch.items()})
            total += float(nll)
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("No token was masked: give more or longer texts, or a higher mlm_probability.")
    return math.exp(total / count)


@dataclass(frozen=True)
class BackboneCopy:
    """Which tensors went from the MLM backbone into the sentence encoder."""

    n_tensors: int
    skipped_encoder_keys: tuple[str, ...]  # in the encoder only (its pooler): left as they were


def copy_backbone_to_encoder(mlm_model: Any, encoder: SentenceTransformer) -> BackboneCopy:
    """The MLM-trained backbone into the encoder's transformer; keys must match one to one except the
    pooler (unused by sentence embeddings): we refuse to copy half a model."""
    target, source = encoder[0].auto_model, mlm_model.base_model.state_dict()
    result = target.load_state_dict(source, strict=False)
    unexpected, missing = tuple(result.unexpected_keys), tuple(result.missing_keys)
    bad_missing = [k for k in missing if not k.startswith("pooler.")]
    if unexpected or bad_missing:
        raise ValueError(
            f"The MLM backbone ({type(mlm_model.base_model).__name__}) does not match the encoder's "
            f"transformer ({type(target).__name__}): {len(unexpected)} unexpected keys "
            f"{list(unexpected[:5])}, {len(bad_missing)} missing keys {bad_missing[:5]}."
        )
    log.info("Copied %d backbone tensors into the sentence encoder.", len(source))
    return BackboneCopy(len(source), missing)


class MLMModule(TrainingModule):
    """Masked-LM training of a model folder's backbone; logs held-out perplexity."""

    no_decay_names = ("LayerNorm", "layer_norm", "layernorm")

    def __init__(
        self,
        model_path: str | Path,
        *,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.06,
        dataset_name: str = "corpus",
    ) -> None:
        super().__init__()
        model_path = str(model_path)  # a Path in the hparams would make checkpoints need pickle to load
        self.save_hyperparameters()
        self.model, self.tokenizer, self.head_report = load_mlm_model(model_path)
        self.model.train()  # from_pretrained returns eval mode, and Lightning keeps it: no dropout
        self._val_nll, self._val_count = 0.0, 0

    def forward(self, **batch: torch.Tensor) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/mlm_loss", loss, prog_bar=True, batch_size=int(batch["input_ids"].shape[0]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        nll, n = masked_nll(self.model, batch)
        self._val_nll += float(nll)
        self._val_count += n

    def on_validation_epoch_end(self) -> None:
        total = torch.tensor([self._val_nll, float(self._val_count)], device=self.device)
        self._val_nll, self._val_count = 0.0, 0
        if self.trainer.world_size > 1:  # a perplexity of shard perplexities is wrong: sum first
            total = self.all_gather(total).reshape(-1, 2).sum(0)
        if total[1] == 0:
            return
        mean_nll = float(total[0] / total[1])
        name = self.hparams["dataset_name"]
        self.log(f"val/{name}/mlm_loss", mean_nll, rank_zero_only=False)
        self.log(f"val/{name}/perplexity", math.exp(mean_nll), prog_bar=True, rank_zero_only=False)
