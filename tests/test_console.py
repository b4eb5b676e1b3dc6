"""Progress bars follow EMBEDLAB_PROGRESS and the terminal; third-party noise (faiss's loader, Lightning's
litlogger tip, W&B's "anonymous" warning) never reaches a run's log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedlab.console import progress, progress_enabled

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("swigfaiss_avx512_spr", "Could not load library", "litlogger", "litmodels", "anonymous")
# A tiny run's noisy steps, with everything logged at INFO as Hydra's job logging does.
RUN = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
import embedlab
import faiss, lightning as L
from embedlab.tracking.wandb_logger import make_wandb_logger
wb = make_wandb_logger(save_dir=sys.argv[1], mode="offline", name="quiet")
trainer = L.Trainer(logger=[wb], max_epochs=1, enable_checkpointing=False, enable_model_summary=False)
wb.experiment.finish()
print("run done", file=sys.stderr)
"""


@pytest.mark.parametrize(("flag", "on"), [("0", False), ("off", False), ("1", True), ("", False)])
def test_progress_switch(monkeypatch: pytest.MonkeyPatch, flag: str, on: bool) -> None:
    monkeypatch.setenv("EMBEDLAB_PROGRESS", flag)  # "": unset, and pytest's stderr is no terminal
    assert progress_enabled() is on
    assert progress(range(3), disable=False).disable is (not on)
    assert progress(range(3), disable=True).disable


def test_a_run_logs_no_third_party_noise(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "WANDB_SILENT": "false", "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "run done" in out, out[-2000:]
    assert "GPU available" in out  # Lightning's own information still comes through
    assert [line for line in out.splitlines() if any(n in line for n in NOISE)] == []
