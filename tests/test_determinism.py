"""Same config and seed twice -> the same results.json metrics, bit for bit (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

ARGS = ("model=tiny_bert", "data=lee", "logger=none", "debug=limit", "trainer.deterministic=true",
        "save_model=false", "embedding_cache=false")  # fmt: skip


def _run(make_cfg, out: Path, *extra: str) -> dict[str, float]:
    from embedlab.jobs import train

    train(make_cfg(*ARGS, *extra, output_dir=out))
    metrics = json.loads((out / "results.json").read_text())["metrics"]
    return {k: v for k, v in metrics.items() if not k.endswith("encode_texts_per_s")}  # wall-clock timings


def test_same_seed_same_metrics(make_cfg, tmp_path: Path) -> None:
    from embedlab.models.tiny import build_tiny_model

    # Build model=tiny_bert's model first: building draws from the global RNG, which would
    # shift the first run's dropout masks only (loading a built one draws nothing).
    build_tiny_model("bert", max_seq_length=64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # CPU kernels are deterministic at a fixed thread count
        first = _run(make_cfg, tmp_path / "a")
        second = _run(make_cfg, tmp_path / "b")
        other_seed = _run(make_cfg, tmp_path / "c", "seed=7")
    finally:
        torch.set_num_threads(threads)
    assert first and first == second  # exact equality, not approx
    assert "val/lee/spearman_cosine" in first
    # The seed reaches the result (dropout masks, data order): the equality above is not vacuous.
    assert other_seed["val/lee/spearman_cosine"] != first["val/lee/spearman_cosine"]
    steps = [json.loads((tmp_path / d / "results.json").read_text())["meta"]["train"]["steps"] for d in "ab"]
    assert steps[0] == steps[1] > 0
