"""Killing one job of a sweep leaves the others' results and shows it as failed.

A real 3-job multirun through ``hydra/launcher=submitit_local`` (each job a subprocess);
the last job's task process is SIGKILLed as soon as it starts, as the OOM killer would.
submitit's local job id is the pid of a *controller* that spawns the task; killing only the
controller orphans the task, which then finishes normally (that raced on a fast machine),
so the test waits for the controller's child and kills it.
The sweep must end normally, the other two jobs must have their results, and the report
written by the sweep's callback must list the killed job as failed, not drop it.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    """Child pids of ``pid`` (Linux /proc); empty when it has none yet or has exited."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


@pytest.mark.slow
def test_killed_job_is_reported_failed_and_others_finish(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false",
           "EMBEDLAB_CACHE": str(tmp_path / "cache")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "evaluate.py", "-m", "hydra/launcher=submitit_local", "model=tiny_bert",
         "pooling=mean,cls,max", "logger=none", f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    killed = None
    deadline = time.monotonic() + 480  # composing + submitting: seconds when idle, minutes on a loaded box
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        # submitit's local job folders are named by the job controller's pid
        pids = sorted(int(f.name) for f in (sweep_dir / ".submitit").glob("*") if f.name.isdigit())
        if len(pids) == 3:  # all submitted: kill job 2's task while it imports torch
            tasks = _children(pids[-1])
            if tasks:
                os.kill(tasks[0], signal.SIGKILL)
                killed = tasks[0]
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=600)
    assert killed is not None, f"never saw 3 submitted jobs:\n{out[-3000:]}"
    assert proc.returncode == 0, f"the sweep did not survive a lost job:\n{out[-3000:]}"
    assert "was lost" in out, out[-3000:]
    results = sorted(sweep_dir.glob("*/results.json"))
    assert len(results) == 2, [p.parent.name for p in results]
    rows = list(csv.DictReader((sweep_dir / "report" / "jobs.csv").open()))
    status = sorted(r["status"] for r in rows)
    assert status == ["failed", "ok", "ok"], rows
