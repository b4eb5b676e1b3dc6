"""W&B never blocks offline and always finishes; results.json is complete and safe."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from embedlab.tracking.results import atomic_write_text, redact, write_results
from embedlab.tracking.wandb_logger import choose_mode


def test_no_key_means_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    assert choose_mode("auto") == "offline"
    assert choose_mode("online") == "offline"
    assert choose_mode("disabled") == "disabled"


def test_key_but_unreachable_server_falls_back_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    start = time.perf_counter()
    assert choose_mode("auto") == "offline"
    assert time.perf_counter() - start < 5


def test_wandb_run_is_finished_even_when_the_job_fails(make_cfg, tmp_path: Path, monkeypatch) -> None:
    import wandb

    from embedlab.jobs import train
    from embedlab.tasks.sts import STSTask

    def boom(*args, **kwargs):
        raise RuntimeError("evaluation exploded")

    monkeypatch.setattr(STSTask, "evaluate", boom)
    cfg = make_cfg("model=tiny_bert", "debug=fast", "logger=wandb", "logger.wandb.mode=offline")
    with pytest.raises(RuntimeError, match="exploded"):
        train(cfg)
    assert wandb.run is None  # finished, so the next job of a sweep gets a new run
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_wandb_offline_run_gets_metrics_and_table(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    train(make_cfg("model=tiny_bert", "debug=fast", "logger=wandb", "logger.wandb.mode=offline"))
    run_dir = next((tmp_path / "wandb").glob("offline-run-*"))
    assert any(run_dir.glob("*.wandb"))  # the run's data, ready for `wandb sync`


def test_results_keys_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, {"test/stsb/spearman_cosine": 0.8, "val/stsb/x": float("nan")}, {"a": 1})
    data = json.loads(path.read_text())
    assert data["metrics"] == {"test/stsb/spearman_cosine": 0.8, "val/stsb/x": None}
    with pytest.raises(ValueError, match="split/dataset/metric"):
        write_results(path, {"spearman": 1.0}, {})
    assert json.loads(path.read_text()) == data  # a failed write leaves the old file intact
    atomic_write_text(tmp_path / "x.txt", "hello")
    assert not list(tmp_path.glob(".*.tmp"))


def test_secrets_are_redacted() -> None:
    cfg = {
        "logger": {"wandb": {"api_key": "secret", "project": "p"}},
        "hub": {"token": "hf_x"},
        "n": [{"password": "p"}],
    }
    assert redact(cfg) == {
        "logger": {"wandb": {"api_key": "<redacted>", "project": "p"}},
        "hub": {"token": "<redacted>"},
        "n": [{"password": "<redacted>"}],
    }
