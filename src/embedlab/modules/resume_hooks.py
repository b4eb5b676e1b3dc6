"""LightningModule hooks that make a mid-epoch resume exact (used by every training module).

A checkpoint written mid-epoch carries, next to the weights and optimizer state:
- the global RNG states (torch, numpy, random: dropout masks), applied just before the
  first resumed training step, so nothing Lightning does while restoring (building
  loaders, moving the model) can draw from them first;
- the training loaders' positions (:mod:`embedlab.data.resumable`), which Lightning drops
  when ``configure_optimizers`` reads ``estimated_stepping_batches``; they are put back
  at ``on_train_start``.
"""

from __future__ import annotations

from typing import Any


class ResumableTraining:
    """Mix into a LightningModule (before ``L.LightningModule``) for exact mid-epoch resumes."""

    trainer: Any

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from embedlab.data.resumable import checkpoint_rng_state

        checkpoint["embedlab_rng"] = checkpoint_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from embedlab.data.resumable import saved_loader_states

        self._pending_rng = checkpoint.get("embedlab_rng")
        self._pending_loader_states = saved_loader_states(checkpoint)

    def on_train_start(self) -> None:
        states = getattr(self, "_pending_loader_states", None)
        if states:
            from embedlab.data.resumable import restore_loader_positions

            restore_loader_positions(self.trainer, states)  # Lightning drops them: see there
        self._pending_loader_states = None

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        state = getattr(self, "_pending_rng", None)
        if state is not None:
            from embedlab.data.resumable import restore_rng_state

            restore_rng_state(state)
            self._pending_rng = None
