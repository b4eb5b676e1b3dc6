"""A SLURM job that reaches its time limit mid-epoch checkpoints, requeues itself and resumes, and ends
with the metrics of an uninterrupted run.

The job runs through ``hydra/launcher=submitit_slurm_cpu`` on the one-node SLURM with a one-minute
limit and ``--signal=USR2@5``: SLURM sends the warning up to ~30 s before that (its check interval).
The job's steps are paced (``pacing.MinStepSeconds``: at least 50 ms each, so 65 s of training on any
machine; CI once trained the unpaced run in 37 s), so the warning always falls while the tiny run
trains. ``CheckpointOnSignal`` saves last.ckpt at the next step, submitit
requeues the job, and the requeued job (``SLURM_RESTART_COUNT`` >= 1) resumes from last.ckpt. SLURM
holds a requeued batch job for 120 s before it may start again; the test, as the cluster's admin,
releases it at once (``scontrol update StartTime=now``), which changes nothing the job sees. The
periodic checkpoint is off, so the only checkpoint is the one the signal saved. The uninterrupted
reference runs beside it as a plain process, on one thread as the SLURM job does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 215  # 857 Lee training pairs (70%) in batches of 4
EPOCHS = 6
PACED = ("+callbacks.pace._target_=tests.cluster.pacing.MinStepSeconds", "+callbacks.pace.seconds=0.05")
RUN_ARGS = (
    "model=tiny_bert", "data=lee", "data.batch_size=4", f"trainer.max_epochs={EPOCHS}", "logger=none",
    "save_model=false", "embedding_cache=false", "callbacks.resume_checkpoint.every_n_train_steps=100000",
)  # fmt: skip


def _release_requeued_jobs() -> None:
    """Start requeued jobs now instead of after SLURM's 120 s requeue hold."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True, timeout=30
    )
    for line in out.stdout.splitlines():
        job, reason = line.split(maxsplit=1)
        if reason.strip() == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], timeout=30, check=False)


def _metrics(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
    return {k: v for k, v in metrics.items() if not k.endswith("_per_s")}  # timings differ


@pytest.mark.cluster
@pytest.mark.usefixtures("slurm")
def test_time_limit_requeues_and_resumes_to_the_uninterrupted_metrics(tmp_path: Path) -> None:
    from embedlab.models.tiny import build_tiny_model

    build_tiny_model("bert", max_seq_length=64)  # into the shared cache before two processes want it
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)  # tests.cluster.pacing
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1",
           "PYTHONPATH": path}  # fmt: skip
    straight, sweep = tmp_path / "straight", tmp_path / "sweep"
    log = (tmp_path / "straight.log").open("w")
    reference = subprocess.Popen([sys.executable, "train.py", *RUN_ARGS, f"hydra.run.dir={straight}"],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    limited = subprocess.Popen(
        [sys.executable, "train.py", "-m", "hydra/launcher=submitit_slurm_cpu", *RUN_ARGS, *PACED,
         "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5", "hydra.launcher.max_num_timeout=10",
         f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 900
    while limited.poll() is None and time.monotonic() < deadline:
        _release_requeued_jobs()
        time.sleep(2)
    out, _ = limited.communicate(timeout=60)
    assert limited.returncode == 0, out[-4000:]
    assert reference.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    (job,) = [p.parent for p in sweep.glob("*/results.json")]
    meta = json.loads((job / "results.json").read_text())["meta"]["train"]
    assert meta["slurm_restarts"] >= 1 and meta["resumed_from"] == "last", meta
    assert meta["steps"] == EPOCHS * STEPS_PER_EPOCH
    saved = [
        int(s) for s in re.findall(r"at step (\d+) for the requeued job", (job / "train.log").read_text())
    ]
    assert saved and all(0 < s < EPOCHS * STEPS_PER_EPOCH for s in saved), saved
    assert any(s % STEPS_PER_EPOCH for s in saved), f"no save fell mid-epoch: {saved}"
    a, b = _metrics(straight), _metrics(job)
    assert a.keys() == b.keys() and "test/lee/spearman_cosine" in a
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
