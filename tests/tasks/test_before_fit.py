"""eval_before_fit (make demo): the initial model is scored through the same evaluation before
fine-tuning, and results.json's meta.before_fit records before, after and their difference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_before_and_after_fine_tuning_are_recorded(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    run = ("model=tiny_bert", "data=lee", "debug=fast", "logger=none", "save_model=false")
    metrics, _ = train(make_cfg(*run, "eval_before_fit=true"))
    before_fit = json.loads((tmp_path / "results.json").read_text())["meta"]["before_fit"]
    assert set(before_fit["headline"]) == {"val/lee/spearman_cosine", "test/lee/spearman_cosine"}
    test = before_fit["headline"]["test/lee/spearman_cosine"]
    assert test["after"] == pytest.approx(metrics["test/lee/spearman_cosine"])
    assert test["before"] == pytest.approx(before_fit["metrics"]["test/lee/spearman_cosine"])
    assert -1.0 <= test["before"] <= 1.0 and -1.0 <= test["after"] <= 1.0
    assert test["difference"] == pytest.approx(test["after"] - test["before"])
    pearson = "test/lee/pearson_cosine"  # continuous: one training step moves it (ranks may not move)
    assert before_fit["metrics"][pearson] != pytest.approx(metrics[pearson], abs=0, rel=1e-9)
    assert before_fit["metrics"]["test/lee/n_pairs"] == metrics["test/lee/n_pairs"]


def test_off_by_default_and_on_in_the_demo(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    assert make_cfg("experiment=demo").eval_before_fit is True
    train(make_cfg("model=tiny_bert", "data=lee", "debug=fast", "logger=none", "save_model=false"))
    assert "before_fit" not in json.loads((tmp_path / "results.json").read_text())["meta"]
