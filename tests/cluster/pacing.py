"""A test-only callback that gives every training step a minimum wall time.

The requeue test needs training to outlast a one-minute SLURM limit on any machine: the tiny run
trained 2,580 steps in 37 s on one CI machine and in 100 s on another. Pacing the steps fixes the
wall time without changing a single number the run computes.
"""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import Callback


class MinStepSeconds(Callback):
    """Sleep at the end of each training step until it has taken at least ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._started = time.monotonic()

    def on_train_batch_start(self, *args: Any) -> None:
        self._started = time.monotonic()

    def on_train_batch_end(self, *args: Any) -> None:
        time.sleep(max(0.0, self.seconds - (time.monotonic() - self._started)))
