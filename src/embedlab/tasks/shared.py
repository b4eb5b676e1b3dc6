"""What tasks and encode_corpus share: the run's Encoder, pooling prefetch, a retrieval set's texts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.data.retrieval import RetrievalSet, load_retrieval_set
from embedlab.encode.cache import EmbeddingCache
from embedlab.encode.encoder import Encoder
from embedlab.encode.pooling_share import prefetch_poolings as prefetch

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs


def make_encoder(specs: RunSpecs, model: Any) -> Encoder:
    """The run's one Encoder: its encode settings and embedding cache (encode_corpus fills the same entries)."""
    root = Path(specs.run.cache_dir) / "embeddings" if specs.run.embedding_cache else None
    return Encoder(model, specs.encode.settings, EmbeddingCache(root))


def prefetch_poolings(specs: RunSpecs, encoder: Encoder, text_sets: list[tuple[str, list[str]]]) -> None:
    """With ``encode.share_poolings`` (a sweep's poolings), one transformer pass fills the
    cache for all of them, so the other poolings' jobs encode nothing."""
    modes = list(specs.encode.share_poolings)
    if modes and not specs.run.fit and specs.model_kind == "transformer":
        prefetch(encoder, text_sets, modes)


def load_retrieval(specs: RunSpecs, split: str | None = None) -> RetrievalSet:
    """The run's retrieval set: ``split``, else the evaluation split ``data.split``."""
    d = specs.data_cfg
    return load_retrieval_set(d["format"], d.get("root"), split=split or d["split"], name=d["name"])


def retrieval_texts(data: RetrievalSet) -> dict[str, list[str]]:
    """The text lists a retrieval evaluation encodes, in its order (encode_corpus fills the same cache keys)."""
    return {
        "documents": [data.corpus[d] for d in data.doc_ids],
        "queries": [data.queries[q] for q in data.query_ids],
    }
