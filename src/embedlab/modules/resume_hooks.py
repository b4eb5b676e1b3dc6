"""What every training module shares: exact mid-epoch resumes and the AdamW + warm-up wiring. A
checkpoint carries the RNG states (applied just before the first resumed step) and the loaders'
positions (Lightning drops them when ``configure_optimizers`` reads ``estimated_stepping_batches``)."""

from __future__ import annotations

from typing import Any

import torch

from embedlab.data.resumable import (
    checkpoint_rng_state,
    restore_loader_positions,
    restore_rng_state,
    saved_loader_states,
)


class ResumableTraining:
    """Mix into a LightningModule (before ``L.LightningModule``) for exact mid-epoch resumes."""

    trainer: Any

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["embedlab_rng"] = checkpoint_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get("embedlab_rng")
        self._pending_loader_states = saved_loader_states(checkpoint)

    def on_train_start(self) -> None:
        states = getattr(self, "_pending_loader_states", None)
        if states:
            restore_loader_positions(self.trainer, states)  # Lightning drops them: see there
        self._pending_loader_states = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        state = getattr(self, "_pending_rng", None)
        if state is not None:
            restore_rng_state(state)
            self._pending_rng = None


def adamw_with_warmup(module: Any, no_decay_names: tuple[str, ...], *, fused: bool = False) -> dict[str, Any]:
    """AdamW (hparams ``lr``, ``weight_decay``) without decay on biases and norm weights, as BERT
    and SBERT do, and a linear schedule warming up over ``warmup_ratio`` of the steps."""
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or any(n in name for n in no_decay_names) else decay).append(
                param
            )
    hp = module.hparams

    def groups() -> list[dict[str, Any]]:  # fresh dicts: the optimizer writes its defaults into them
        return [
            {"params": decay, "weight_decay": hp["weight_decay"]},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    try:
        optimizer = torch.optim.AdamW(groups(), lr=hp["lr"], fused=fused or None)
    except RuntimeError:  # no fused kernel for the parameters' device or dtype: torch's default
        optimizer = torch.optim.AdamW(groups(), lr=hp["lr"])
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * total), total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
