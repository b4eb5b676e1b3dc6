"""An exact mid-epoch checkpoint when the scheduler warns that a job is about to end (time limit or
preemption), then the launcher's own handler, which requeues the job; the requeued job resumes from
that checkpoint (``tasks/runner.py``: ``SLURM_RESTART_COUNT``). Why not a library's: submitit signals
SIGUSR2 and requeues but knows nothing of Lightning, and Lightning's SLURM requeue listens to SIGUSR1
and saves its ``hpc_ckpt`` on the signal itself, mid-step under DDP; here every rank stops at the same
step boundary, so the checkpoint holds each rank's data position (``modules/resume_hooks.py``)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)


class CheckpointOnSignal(L.Callback):
    """On ``signal_name`` during training: finish the step, save ``path`` on every rank together, hand the
    signal to the handler that was installed before (submitit's requeue), and stop this process."""

    def __init__(self, path: str, signal_name: str = "SIGUSR2") -> None:
        self.path, self.signum = Path(path), signal.Signals[signal_name]
        self._previous: Any = None
        self._received = False

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if threading.current_thread() is threading.main_thread():  # Python delivers signals there only
            self._previous = signal.signal(self.signum, self._note)

    def _note(self, signum: int, frame: Any) -> None:
        log.warning("Received %s: saving a checkpoint at the end of this step.", signal.Signals(signum).name)
        self._received = True

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        received = self._received
        if trainer.world_size > 1:  # any rank signalled: all stop at this step, or a collective hangs
            received = trainer.strategy.reduce_boolean_decision(received, all=False)
        if not received:
            return
        trainer.save_checkpoint(self.path)
        log.warning(
            "Saved %s at step %d for the requeued job to resume from.", self.path, trainer.global_step
        )
        previous = self._restore()
        if callable(previous):
            previous(self.signum, None)  # submitit: rank 0 requeues the job and exits
        raise SystemExit(f"Stopped on {self.signum.name}: resume with ckpt_path={self.path}")

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._restore()  # during evaluation the launcher's handler requeues at once; the fit is saved

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> Any:
        previous, self._previous = self._previous, None
        if previous is not None:
            signal.signal(self.signum, previous)
        return previous
