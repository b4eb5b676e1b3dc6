"""Bitext mining (Tatoeba): evaluation only, accuracy of nearest-neighbour translation search."""

from __future__ import annotations

from typing import Any

from embedlab.encode.encoder import Encoder
from embedlab.tasks.base import EvalOutput, Task, cache_counts, register


@register("bitext")
class BitextTask(Task):
    can_fit = False

    def evaluate(self, encoder: Encoder, loggers: list[Any]) -> EvalOutput:
        from embedlab.eval.bitext import evaluate_bitext

        d = self.specs.data_cfg
        raw, revisions = evaluate_bitext(encoder, list(d["langs"]), d.get("root"))
        prefix = f"{d['metric_split']}/{self.specs.data_name}"
        metrics = {f"{prefix}/{k}": v for k, v in raw.items()} | cache_counts(prefix, encoder.cache)
        return EvalOutput(metrics, data_meta={"name": self.specs.data_name, "fingerprint": revisions})
