"""The base of every training module: exact mid-epoch resumes and the AdamW + warm-up wiring. A
checkpoint carries the RNG states (applied just before the first resumed step) and the loaders'
positions (Lightning drops them when ``configure_optimizers`` reads ``estimated_stepping_batches``)."""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L
import torch

from embedlab.data.resumable import (
    checkpoint_rng_state,
    gather_rank_states,
    own_rank_state,
    restore_loader_positions,
    restore_rng_state,
    saved_loader_states,
    training_loaders,
)


class TrainingModule(L.LightningModule):
    """Hparams ``lr``, ``weight_decay``, ``warmup_ratio``; subclasses name their norm weights."""

    no_decay_names: ClassVar[tuple[str, ...]] = ("LayerNorm", "layer_norm")
    fused_adamw: ClassVar[bool] = False
    _pending_rng: Any = None
    _pending_loader_states: Any = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["embedlab_rng"] = checkpoint_rng_state()
        if (world := self.trainer.world_size) > 1:  # every rank saves (Lightning writes rank 0's file)
            loaders = [dl.state_dict() for dl in training_loaders(self.trainer)]
            mine = {"rng": checkpoint["embedlab_rng"], "loaders": loaders}
            checkpoint["embedlab_ranks"] = gather_rank_states(mine, world)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("embedlab_rng")
        self._pending_loader_states = saved_loader_states(checkpoint)
        ranks, world = checkpoint.get("embedlab_ranks"), self.trainer.world_size
        if ranks is not None or world > 1:  # DDP: each rank resumes its own RNG, data position and masks
            own = own_rank_state(ranks, self.trainer.global_rank, world)
            self._pending_rng, self._pending_loader_states = own["rng"], own["loaders"]

    def on_train_start(self) -> None:
        if self._pending_loader_states:
            restore_loader_positions(self.trainer, self._pending_loader_states)  # Lightning drops them
        self._pending_loader_states = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng)
            self._pending_rng = None

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW without decay on biases and norm weights, as BERT and SBERT do, and a linear
        schedule warming up over ``warmup_ratio`` of the steps."""
        from transformers import get_linear_schedule_with_warmup

        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                no = name.endswith("bias") or any(n in name for n in self.no_decay_names)
                (no_decay if no else decay).append(param)
        hp = self.hparams

        def groups() -> list[dict[str, Any]]:  # fresh dicts: the optimizer writes its defaults into them
            return [
                {"params": decay, "weight_decay": hp["weight_decay"]},
                {"params": no_decay, "weight_decay": 0.0},
            ]

        try:
            optimizer = torch.optim.AdamW(groups(), lr=hp["lr"], fused=self.fused_adamw or None)
        except RuntimeError:  # no fused kernel for the parameters' device or dtype: torch's default
            optimizer = torch.optim.AdamW(groups(), lr=hp["lr"])
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
