"""Bitext mining (Tatoeba): evaluation only, accuracy of nearest-neighbour translation search."""

from __future__ import annotations

from typing import Any

from embedlab.tasks.base import EncoderHandle, EvalOutput, Task, cache_counts, register


@register("bitext")
class BitextTask(Task):
    can_fit = False

    def evaluate(self, encoder: EncoderHandle, loggers: list[Any]) -> EvalOutput:
        from embedlab.eval.bitext_task import (
            evaluate_bitext,  # TODO(merge): Encoder -- pass the encoder, not (model, cache, key)
        )

        d = self.specs.data_cfg
        raw, revisions = evaluate_bitext(encoder.model, list(d["langs"]), d.get("root"), cache=encoder.cache,
                                         model_key=encoder.key, batch_size=self.specs.encode.batch_size)  # fmt: skip
        prefix = f"{d['metric_split']}/{self.specs.data_name}"
        metrics = {f"{prefix}/{k}": v for k, v in raw.items()} | cache_counts(prefix, encoder.cache)
        return EvalOutput(metrics, data_meta={"name": self.specs.data_name, "fingerprint": revisions})
