"""A sweep survives its failing jobs, records them, and a re-run skips what already finished."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from embedlab import jobs

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path: Path, **extra) -> object:
    return OmegaConf.create(
        {
            "task_name": "train",
            "monitor": "val/x/score",
            "redo": False,
            "paths": {"output_dir": str(tmp_path)},
            **extra,
        }
    )


@pytest.mark.parametrize(
    "error",
    [MemoryError("cannot allocate 80 GB"), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     ValueError("batch sizes must be >= 1, got 0 and 32.")],
    ids=["MemoryError", "torch-oom", "ValueError"],
)  # fmt: skip
def test_failed_job_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from embedlab.report.scan import read_job

    def task(cfg):
        raise error

    monkeypatch.setattr(jobs, "in_multirun", lambda: True)
    assert jobs.run_job(_cfg(tmp_path), task) is None  # returns: the launcher runs the next job
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["status"] == "failed" and payload["metrics"] == {}
    assert payload["error"]["type"] == type(error).__name__ and payload["error"]["exit_code"] == 1
    assert str(error) in payload["error"]["message"] and "Traceback" in payload["error"]["traceback"]
    job = read_job(tmp_path)  # the report reads it as a failure, with the reason
    assert job.status == "failed" and job.reason == f"{type(error).__name__}: {error}"


def test_single_run_still_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def task(cfg):
        raise ValueError("bad value")

    monkeypatch.setattr(jobs, "in_multirun", lambda: False)
    with pytest.raises(ValueError, match="bad value"):
        jobs.run_job(_cfg(tmp_path), task)
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


def test_done_job_is_skipped_unless_redo(tmp_path: Path) -> None:
    calls = []

    def task(cfg):
        calls.append(1)
        return {"val/x/score": 0.5 + len(calls)}, None

    (tmp_path / "results.json").write_text(json.dumps({"metrics": {"val/x/score": 0.25}, "meta": {}}))
    assert jobs.run_job(_cfg(tmp_path), task) == 0.25 and not calls  # stored monitor value
    assert jobs.run_job(_cfg(tmp_path, redo=True), task) == 1.5 and len(calls) == 1
    (tmp_path / "results.json").write_text(json.dumps({"status": "failed", "metrics": {}, "error": {}}))
    assert jobs.run_job(_cfg(tmp_path), task) == 2.5  # a failed job runs again
    (tmp_path / "results.json").write_text("{truncated")
    assert jobs.run_job(_cfg(tmp_path), task) == 3.5  # so does an unreadable one


# --- a real multirun: four jobs, three of which fail in different ways ------------------------

# Four jobs: one trains; one raises while loading its data (Lee's [0, 1] ratings fall outside
# a declared [2, 3] range); two have a value that composes but cannot work (mnrl on STS pairs).
SWEEP = ("model=tiny_bert", "data=lee", "logger=none", "debug=fast", "save_model=false",
         "embedding_cache=false", "objective=cosine,mnrl", "data.score_range=[0,1],[2,3]")  # fmt: skip


def _multirun(sweep_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", WANDB_MODE="disabled")
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *SWEEP, f"hydra.sweep.dir={sweep_dir}", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_sweep_with_failing_jobs_finishes_reports_and_reruns_only_failures(tmp_path: Path) -> None:
    from embedlab.report.scan import scan

    sweep = tmp_path / "sweep"
    first = _multirun(sweep)
    assert first.returncode == 0, first.stderr[-3000:]  # the failures did not stop the multirun
    jobs = {(j.config["objective"]["name"], tuple(j.config["data"]["score_range"])): j for j in scan(sweep)}
    assert len(jobs) == 4
    assert [k for k, j in jobs.items() if j.ok] == [("cosine", (0, 1))]
    assert jobs["cosine", (2, 3)].reason.startswith("DataError: 'lee' split")
    assert "outside the declared range [2.0, 3.0]" in jobs["cosine", (2, 3)].reason
    assert jobs["mnrl", (0, 1)].reason.startswith("ConfigError: objective=mnrl trains on")
    assert jobs["mnrl", (2, 3)].reason.startswith("ConfigError: objective=mnrl trains on")
    report = (sweep / "report" / "report.md").read_text()  # on_multirun_end ran: the report exists
    assert "outside the declared range" in report
    done = jobs["cosine", (0, 1)].path / "results.json"
    failed = jobs["cosine", (2, 3)].path / "results.json"
    stamp, failed_stamp = done.stat().st_mtime_ns, failed.stat().st_mtime_ns
    again = _multirun(sweep)
    assert again.returncode == 0, again.stderr[-3000:]
    assert done.stat().st_mtime_ns == stamp  # skipped: its results were already there
    assert failed.stat().st_mtime_ns != failed_stamp  # a failed job is tried again
    assert "Skipping" in (done.parent / "train.log").read_text()

    redo = _multirun(sweep, "redo=true")  # the same job folders: redo is not part of their names
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert done.stat().st_mtime_ns != stamp
    assert sorted(p for p in sweep.iterdir() if p.is_dir() and p.name[0].isdigit()) == sorted(
        j.path for j in jobs.values()
    )
