"""submitit launchers whose sweep outlives a lost job.

hydra-submitit-launcher waits for its jobs in order and re-raises the first failure, so a
job killed by the scheduler (time limit, OOM killer, preemption, ``scancel``, SIGKILL)
ends the multirun there: later jobs are no longer awaited and the report callback never
runs. These launchers wait for every job, log each lost one with the reason submitit
gives, and hand Hydra a completed-but-empty return for it, so the sweep ends normally and
``report.py`` (run by the sweep's callback) lists the job as failed from its folder: its
log names the kill, and it has no results.json. Jobs that raise inside Python never reach
this point: train.py records them as failed results (see ``embedlab.jobs``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

log = logging.getLogger(__name__)

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
except ImportError:  # no cluster extra: Hydra imports this module on every start, so stay silent here

    class _NeedsClusterExtra:
        """Stands in for submitit's launchers: choosing one says what to install."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            from embedlab.errors import ConfigError

            raise ConfigError(
                "hydra/launcher=submitit_* needs the cluster extra (hydra-submitit-launcher, submitit). "
                "Fix: pip install -r requirements/cluster.txt  (or pip install 'embedlab[cluster]')"
            )

    LocalLauncher = SlurmLauncher = _NeedsClusterExtra  # type: ignore[assignment,misc]


class LostJob:
    """What a lost job returns to Hydra in place of the task's return value."""

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason

    def __repr__(self) -> str:
        return f"LostJob({self.job_id}: {self.reason})"


class _TolerantJob:
    """Wraps a submitit job: ``results()`` never raises; a lost job becomes a LostJob return."""

    def __init__(self, job: Any, overrides: Sequence[str], num: int) -> None:
        self._job = job
        self._overrides = list(overrides)
        self.num = num

    def results(self) -> list[JobReturn]:
        try:
            return self._job.results()
        except Exception as exc:  # submitit: UncompletedJobError, FailedJobError, ...
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            log.error(
                "Sweep job %s (%s) was lost: %s. The other jobs go on; the report lists it as failed.",
                self._job.job_id,
                " ".join(self._overrides),
                reason,
            )
            ret = JobReturn(overrides=self._overrides, status=JobStatus.COMPLETED)
            ret.return_value = LostJob(str(self._job.job_id), reason)
            return [ret]


class _TolerantMixin:
    """Intercepts the executor's ``map_array`` to wrap the jobs it returns."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        original = submitit.AutoExecutor.map_array

        def map_array(executor: Any, fn: Any, *iterables: Any) -> list[_TolerantJob]:
            jobs = original(executor, fn, *iterables)
            # map_array's iterables: overrides, job dir key, job number, job id key, state
            return [
                _TolerantJob(job, overrides, num)
                for job, overrides, num in zip(jobs, iterables[0], iterables[2], strict=True)
            ]

        submitit.AutoExecutor.map_array = map_array  # type: ignore[method-assign]
        try:
            returns = super().launch(job_overrides, initial_job_idx)  # type: ignore[misc]
        finally:
            submitit.AutoExecutor.map_array = original  # type: ignore[method-assign]
        lost = {
            initial_job_idx + i: r.return_value
            for i, r in enumerate(returns)
            if isinstance(r.return_value, LostJob)
        }
        if lost:
            log.error("%d of %d sweep jobs were lost: %s", len(lost), len(returns), list(lost.values()))
            record_lost_jobs(Path(str(self.config.hydra.sweep.dir)), lost)  # type: ignore[attr-defined]
        return returns


def record_lost_jobs(sweep_dir: Path, lost: dict[int, LostJob]) -> None:
    """Add lost jobs to ``<sweep dir>/lost_jobs.json`` (read by the report), atomically."""
    from embedlab.report.scan import LOST_JOBS_FILE
    from embedlab.tracking.results import atomic_write_text

    path = sweep_dir / LOST_JOBS_FILE
    known = json.loads(path.read_text()) if path.exists() else {}
    known.update({str(num): {"job_id": job.job_id, "reason": job.reason} for num, job in lost.items()})
    atomic_write_text(path, json.dumps(known, indent=2))


class TolerantLocalLauncher(_TolerantMixin, LocalLauncher):
    """``hydra/launcher=submitit_local``: jobs as local subprocesses."""


class TolerantSlurmLauncher(_TolerantMixin, SlurmLauncher):
    """``hydra/launcher=submitit_slurm``: jobs as SLURM array tasks."""
