"""Known user errors read as one message with a fix and their family's exit code, no traceback
(HYDRA_FULL_ERROR=1 brings it back); in a sweep they are recorded and the sweep goes on."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from embedlab import jobs
from embedlab.errors import ConfigError, DataError, ModelUnavailableError

ROOT = Path(__file__).resolve().parents[1]


def _script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    run_dir = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
    environ = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environ |= {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", **env}  # offline: no download either
    cmd = [sys.executable, *args, "logger=none", f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "code", "hint"),
    [(("train.py", "model=roberta", "model.name_or_path=embedlab-tests/no-such-model"), 4, "hf download"),
     (("train.py", "model=bm25", "data=lee"), 2, "evaluate it on retrieval data"),
     pytest.param(("evaluate.py", "model=tiny_bert", "data=sts_file", "data.files.all=missing.csv",
                   "data.score_range=[0,5]"), 3, "Fix:", marks=pytest.mark.slow)],  # 8 s: loads torch
    ids=["model-unavailable", "config", "data"],
)  # fmt: skip
def test_user_error_is_one_message_and_a_family_exit_code(
    tmp_path: Path, args: tuple[str, ...], code: int, hint: str
) -> None:
    done = _script(tmp_path, *args)
    assert done.returncode == code, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    assert hint in done.stderr and "HYDRA_FULL_ERROR=1" in done.stderr
    failed = json.loads(next(tmp_path.glob("run*/results.json")).read_text())
    assert failed["status"] == "failed" and failed["error"]["exit_code"] == code  # still recorded


def test_hydra_full_error_shows_the_traceback(tmp_path: Path) -> None:
    done = _script(tmp_path, "train.py", "model=bm25", "data=lee", HYDRA_FULL_ERROR="1")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConfigError" in done.stderr


def _cfg(tmp_path: Path) -> object:
    return OmegaConf.create(
        {"task_name": "train", "monitor": "val/x/score", "paths": {"output_dir": str(tmp_path)}}
    )


@pytest.mark.parametrize("error", [ConfigError("bad"), DataError("bad"), ModelUnavailableError("bad")])
def test_single_run_exits_with_the_family_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, error: Exception
) -> None:
    def task(cfg):
        raise error

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(jobs, "in_multirun", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        jobs.run_job(_cfg(tmp_path), task)
    assert exit_info.value.code == error.exit_code and len({2, 3, 4} - {error.exit_code}) == 2
    assert f"Error ({type(error).__name__}): bad" in capsys.readouterr().err
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(type(error)):  # the full error: Hydra prints its traceback
        jobs.run_job(_cfg(tmp_path), task)


def test_sweep_logs_a_user_error_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def task(cfg):
        raise DataError("no such file")

    monkeypatch.setattr(jobs, "in_multirun", lambda: True)
    with caplog.at_level(logging.ERROR, logger="embedlab.jobs"):
        assert jobs.run_job(_cfg(tmp_path), task) is None  # the sweep goes on
    (record,) = caplog.records
    assert "no such file" in record.getMessage() and record.exc_info is None


def test_unset_required_values_are_named(make_cfg) -> None:
    cfg = make_cfg("model=tiny_bert", "data=beir", "logger=none", task="evaluate")
    assert {"data.name", "data.root"} <= set(jobs.unset_keys(OmegaConf.to_container(cfg, resolve=False)))
    with pytest.raises(ConfigError, match=r"not set: .*data\.name, data\.root\. Fix: give them"):
        jobs.checked_specs(cfg)
    assert jobs.unset_keys({"a": {"b": ["x", "???"]}, "c": "???"}) == ["a.b.1", "c"]
