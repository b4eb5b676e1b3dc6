"""A new task is one Task subclass (registered under its ``data.task``) plus one data yaml:
the runner, the config module and the report are not touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from embedlab.encode.encoder import Encoder
from embedlab.tasks.base import EvalOutput, Task, cache_counts, register


@register("toy_echo")
class EchoTask(Task):
    """Scores how similar each text is to itself after a second encode (always 1.0)."""

    can_fit = False

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        texts = list(self.specs.data_cfg["texts"])
        emb, _ = encoder.encode_cached(texts, what="toy texts")
        prefix = f"test/{self.specs.data_name}"
        norms = (emb * emb).sum(axis=1)
        metrics = {f"{prefix}/self_similarity": float(norms.mean())} | cache_counts(prefix, encoder.cache)
        cells = [{"tag": "", "axes": {"dim": None, "precision": "float32"}}]
        return EvalOutput(
            metrics, data_meta={"name": self.specs.data_name, "n_texts": len(texts)}, cells=cells
        )


def test_toy_task_runs_through_the_runner(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    data_dir = tmp_path / "configs" / "data"
    data_dir.mkdir(parents=True)
    (data_dir / "toy.yaml").write_text(
        "task: toy_echo\nmetric: self_similarity\nname: toy\neval_batch_size: 8\n"
        "texts: [a red apple, a green pear, the sea]\n"
    )
    cfg = make_cfg(f"hydra.searchpath=[file://{tmp_path / 'configs'}]", "data=toy", "model=tiny_bert",
                   "logger=none", task="evaluate", output_dir=tmp_path / "run")  # fmt: skip
    metrics, objects = evaluate(cfg)
    assert abs(metrics["test/toy/self_similarity"] - 1.0) < 1e-5  # normalised embeddings
    assert isinstance(objects["task"], EchoTask)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["meta"]["cells"] == [{"tag": "", "axes": {"dim": None, "precision": "float32"}}]
    assert results["meta"]["data"] == {"name": "toy", "n_texts": 3}
    assert results["metrics"]["test/toy/n_texts_encoded"] == 3.0
