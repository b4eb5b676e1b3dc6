"""The Encoder: a SentenceTransformer, how to run it (``reference``: ST's ``encode()`` in float32, the
published numbers; ``fast``: :func:`~embedlab.encode.fast.fast_encode`) and where its embeddings are
cached. Whoever needs embeddings receives one (no global backend)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from embedlab.encode.cache import CHUNK_SIZE, EmbeddingCache, encoder_key, entry_key
from embedlab.encode.fast import PRECISIONS, Precision, fast_encode
from embedlab.encode.stats import EncodeStats, check_texts, count_truncated, in_input_order, token_lengths
from embedlab.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Backend = Literal["reference", "fast"]
BACKEND_ALIASES = {"sentence-transformers": "reference"}  # the config spelling before "reference"


@dataclass(frozen=True)
class EncodeSettings:
    """How an :class:`Encoder` runs its model (``configs/encode/``; runs default to ``fast``)."""

    backend: Backend = "reference"
    precision: Precision = "bf16"  # fast backend only: fp32 | bf16 | bf16-autocast
    token_budget: int | None = 8192  # fast backend: short texts share batches up to this many tokens
    threads: int | None = None  # fast backend: torch threads for the call; None: as set
    batch_size: int = 64
    weight_precision: str = "fp32"  # what the model's weights were reduced to: part of the cache key

    def __post_init__(self) -> None:
        backend = BACKEND_ALIASES.get(self.backend, self.backend)
        if backend not in ("reference", "fast"):
            raise ConfigError(
                f"Unknown encode.backend '{self.backend}'. Choose fast or reference (sentence-transformers)."
            )
        object.__setattr__(self, "backend", backend)
        if backend == "fast" and self.precision not in PRECISIONS:
            raise ConfigError(f"Unknown encode.precision '{self.precision}'. Choose one of {PRECISIONS}.")
        if self.batch_size < 1:
            raise ConfigError(f"The encode batch size must be at least 1, got {self.batch_size}.")


def reference_encode(
    model: SentenceTransformer, texts: Sequence[str], *, batch_size: int = 64, what: str = "texts"
) -> tuple[np.ndarray, EncodeStats]:
    """sentence-transformers' ``encode()`` in float32, each distinct text once, truncation counted."""
    unique = check_texts(texts, what)
    limit = int(model.max_seq_length or 512)
    lengths = token_lengths(model, unique)
    n_trunc = count_truncated(lengths, limit, what)
    start = time.perf_counter()
    emb = model.encode(unique, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    seconds = time.perf_counter() - start
    stats = EncodeStats(len(texts), len(unique), n_trunc, int(lengths.max(initial=0)), limit, seconds)
    return in_input_order(emb, unique, texts), stats


class Encoder:
    """:attr:`key` hashes the weights once, on first use: build the Encoder (or :meth:`replace` its
    model) after any training that changes them. ``cache=None``: nothing stored."""

    def __init__(
        self,
        model: SentenceTransformer,
        settings: EncodeSettings | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.model = model
        self.settings = settings or EncodeSettings()
        self.cache = cache if cache is not None else EmbeddingCache(None)

    @property
    def tag(self) -> str:
        """The encode path as part of cache keys: ``st-fp32`` (reference) or ``fast-<precision>``."""
        return f"fast-{self.settings.precision}" if self.settings.backend == "fast" else "st-fp32"

    @functools.cached_property
    def key(self) -> str:
        """This encoder's cache key: content hash of the model (weights, modules, weight precision) + tag."""
        return encoder_key(self.model, self.tag, self.settings.weight_precision)

    def replace(
        self, *, model: SentenceTransformer | None = None, cache: EmbeddingCache | None = None
    ) -> Encoder:
        """The same settings with another model or cache (the key is kept when the model is)."""
        other = Encoder(
            model if model is not None else self.model,
            self.settings,
            cache if cache is not None else self.cache,
        )
        if model is None and "key" in self.__dict__:
            other.key = self.key
        return other

    def encode(self, texts: Sequence[str], *, what: str = "texts") -> tuple[np.ndarray, EncodeStats]:
        """(N, D) float32 embeddings of ``texts`` in their order, and the stats; no cache."""
        s = self.settings
        if s.backend == "reference":
            return reference_encode(self.model, texts, batch_size=s.batch_size, what=what)
        opts = {"precision": s.precision, "token_budget": s.token_budget, "threads": s.threads}
        return fast_encode(self.model, texts, batch_size=s.batch_size, what=what, **opts)

    def encode_chunked(
        self, texts: Sequence[str], *, what: str = "texts", chunk_size: int = CHUNK_SIZE
    ) -> tuple[np.ndarray, EncodeStats]:
        """:meth:`encode` chunk by chunk (bounded memory; shards cut along the same chunks)."""
        from tqdm.auto import tqdm

        out: np.ndarray | None = None
        parts: list[EncodeStats] = []
        n_chunks = -(-len(texts) // chunk_size)
        starts = range(0, len(texts), chunk_size)
        for i, start in enumerate(tqdm(starts, desc=f"encode {what}", unit="chunk", disable=n_chunks < 2)):
            emb, st = self.encode(texts[start : start + chunk_size], what=what)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[start : start + len(emb)] = emb
            parts.append(st)
            if n_chunks > 1:
                log.info("Encoded %s chunk %d/%d (%d texts)", what, i + 1, n_chunks, len(emb))
        limit = int(self.model.max_seq_length or 512)
        return (out if out is not None else np.zeros((0, 0), np.float32)), EncodeStats.total(parts, limit)

    def encode_cached(
        self, texts: Sequence[str], *, what: str = "texts", chunk_size: int = CHUNK_SIZE
    ) -> tuple[np.ndarray, EncodeStats | None]:
        """From the cache (with the stats recorded at encode time, or None), else encoded and stored."""
        cache = self.cache
        key = entry_key(self.key, texts) if cache.root is not None else ""
        hit = cache.get(key) if key else None
        if hit is not None:
            cache.stats.n_from_cache += len(texts)
            log.info("Read %d %s embeddings from the cache (%s)", len(texts), what, key)
            return hit, cache.recorded_stats(key)
        emb, stats = self.encode_chunked(texts, what=what, chunk_size=chunk_size)
        cache.stats.n_encoded += len(texts)
        if key:
            cache.put(key, emb, {"what": what, "n": len(texts), "encode_stats": asdict(stats)})
        return emb, stats
