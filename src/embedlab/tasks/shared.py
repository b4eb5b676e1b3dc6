"""What tasks and encode_corpus share: the run's encoder (cache + key) and pooling prefetch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.tasks.base import EncoderHandle

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs


@contextlib.contextmanager
def encoding_for(specs: RunSpecs) -> Iterator[None]:
    """The run's encode backend for every encode() inside the block.

    TODO(merge): Encoder -- goes away: the Encoder object carries its settings."""
    from embedlab.eval.encode import encoding
    from embedlab.eval.fast_encode import EncodeOptions

    e = specs.encode
    options = EncodeOptions(precision=e.precision, token_budget=e.token_budget, threads=e.threads)
    with encoding("fast" if e.backend == "fast" else "sentence-transformers", options):
        yield


def make_encoder(specs: RunSpecs, model: Any) -> EncoderHandle:
    """The model, its embedding cache and its key there (call inside :func:`encoding_for`).

    TODO(merge): Encoder -- ``Encoder(model, settings, EmbeddingCache(root))``."""
    from embedlab.eval.embedding_cache import EmbeddingCache, encoder_key
    from embedlab.eval.encode import encoding_tag

    root = Path(specs.run.cache_dir) / "embeddings" if specs.run.embedding_cache else None
    key = f"{encoder_key(model, specs.weights.name)}:{encoding_tag()}"
    return EncoderHandle(model, specs.encode, EmbeddingCache(root), key)


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
