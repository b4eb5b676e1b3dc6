"""Helpers the siamese tasks share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedlab.tasks.base import EncoderHandle

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs


def prefetch_poolings(
    specs: RunSpecs, encoder: EncoderHandle, text_sets: list[tuple[str, list[str]]]
) -> None:
    """With ``encode.share_poolings`` (a sweep's poolings), one transformer pass fills the
    cache for all of them, so the other poolings' jobs encode nothing."""
    modes = list(specs.encode.share_poolings)
    if not modes or specs.run.fit or specs.model_kind != "transformer":
        return
    from embedlab.eval.shared_pooling import prefetch_poolings as prefetch

    tag = encoder.key.rsplit(":", 1)[-1]  # TODO(merge): Encoder -- encoder.tag
    prefetch(encoder.model, text_sets, modes, cache=encoder.cache, weight_precision=specs.weights.name,
             encoding_tag=tag, batch_size=specs.encode.batch_size)  # fmt: skip
