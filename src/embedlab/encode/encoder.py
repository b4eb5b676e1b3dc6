"""The Encoder: a SentenceTransformer, how to run it (``reference``: ST's ``encode()`` in float32, the
published numbers; ``fast``: :func:`~embedlab.encode.fast.fast_encode`) and where its embeddings are
cached. Whoever needs embeddings receives one (no global backend). Also :func:`prefetch_poolings`."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from embedlab.console import progress, progress_enabled
from embedlab.devices import device_name, encode_precision
from embedlab.encode.cache import CHUNK_SIZE, EmbeddingCache, encoder_key, entry_key, weights_digest
from embedlab.encode.fast import PRECISIONS, Precision, fast_encode
from embedlab.encode.stats import EncodeStats, encode_distinct, token_lengths
from embedlab.errors import ConfigError
from embedlab.models.pooling import apply_head, build_pooling

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Backend = Literal["reference", "fast"]
BACKEND_ALIASES = {"sentence-transformers": "reference"}  # the config spelling before "reference"
POOLED = ["Transformer", "Pooling", "Normalize"]  # the chains prefetch_poolings handles ([-> Normalize])


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

    def embed(unique: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        kw = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": progress_enabled()}
        return model.encode(unique, **kw), token_lengths(model, unique)

    return encode_distinct(model, texts, what, embed)


@dataclass(eq=False)  # compared by identity, like the model
class Encoder:
    """:attr:`key` hashes the weights once, on first use: build the Encoder (or :meth:`replace` its
    model) after any training that changes them. The default cache stores nothing."""

    model: SentenceTransformer
    settings: EncodeSettings = field(default_factory=EncodeSettings)
    cache: EmbeddingCache = field(default_factory=lambda: EmbeddingCache(None))

    @property
    def precision(self) -> str:
        """What the encode really runs in on the model's device (``devices.encode_precision``)."""
        return encode_precision(str(self.model.device), self.settings.precision, self.settings.backend)

    @property
    def tag(self) -> str:
        """The encode path as part of cache keys: ``st-fp32`` (reference) or ``fast-<precision>``."""
        return f"fast-{self.precision}" if self.settings.backend == "fast" else "st-fp32"

    def describe(self) -> dict[str, str]:
        """``meta.device.evaluate``: the device, its name, the backend and the precision it ran in."""
        device, backend = str(self.model.device), self.settings.backend
        return dict(device=device, name=device_name(device), backend=backend, precision=self.precision)

    @functools.cached_property
    def key(self) -> str:
        """This encoder's cache key: content hash of the model (weights, modules, weight precision) + tag."""
        return encoder_key(self.model, self.tag, self.settings.weight_precision)

    def replace(
        self, *, model: SentenceTransformer | None = None, cache: EmbeddingCache | None = None
    ) -> Encoder:
        """The same settings with another model or cache (the key is kept when the model is)."""
        other = dataclasses.replace(
            self, model=self.model if model is None else model, cache=self.cache if cache is None else cache
        )
        if model is None and "key" in self.__dict__:
            other.key = self.key
        return other

    def encode(self, texts: Sequence[str], *, what: str = "texts") -> tuple[np.ndarray, EncodeStats]:
        """(N, D) float32 embeddings of ``texts`` in their order, and the stats; no cache."""
        s = self.settings
        if s.backend == "reference":
            return reference_encode(self.model, texts, batch_size=s.batch_size, what=what)
        opts = {"precision": self.precision, "token_budget": s.token_budget, "threads": s.threads}
        return fast_encode(self.model, texts, batch_size=s.batch_size, what=what, **opts)

    def encode_cached(
        self, texts: Sequence[str], *, what: str = "texts", chunk_size: int = CHUNK_SIZE
    ) -> tuple[np.ndarray, EncodeStats | None]:
        """From the cache (with the stats recorded at encode time, or None), else encoded chunk by chunk
        (bounded memory; shards cut along the same chunks) and stored."""
        cache = self.cache
        key = entry_key(self.key, texts) if cache.root is not None else ""
        hit = cache.get(key) if key else None
        if hit is not None:
            cache.stats.n_from_cache += len(texts)
            log.info("Read %d %s embeddings from the cache (%s)", len(texts), what, key)
            recorded = cache.meta(key).get("encode_stats") or {}  # as stored at encode time
            known = recorded.keys() == EncodeStats.__dataclass_fields__.keys()
            return hit, EncodeStats(**recorded) if known else None
        out, parts = np.zeros((0, 0), np.float32), []
        n_chunks = -(-len(texts) // chunk_size)
        starts = range(0, len(texts), chunk_size)
        for i, start in enumerate(
            progress(starts, desc=f"encode {what}", unit="chunk", disable=n_chunks < 2)
        ):
            emb, st = self.encode(texts[start : start + chunk_size], what=what)
            if i == 0:  # preallocated: peak memory is the output plus one chunk
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[start : start + len(emb)] = emb
            parts.append(st)
            if n_chunks > 1:
                log.info("Encoded %s chunk %d/%d (%d texts)", what, i + 1, n_chunks, len(emb))
        stats = EncodeStats.total(parts, int(self.model.max_seq_length or 512))
        cache.stats.n_encoded += len(texts)
        if key:
            cache.put(key, out, {"what": what, "n": len(texts), "encode_stats": asdict(stats)})
        return out, stats


def _like(model: SentenceTransformer, modules: list) -> SentenceTransformer:
    """A SentenceTransformer of ``modules`` on ``model``'s device, with its token limit."""
    from sentence_transformers import SentenceTransformer

    out = SentenceTransformer(modules=modules, device=str(model.device))
    out.max_seq_length = model.max_seq_length
    return out


def prefetch_poolings(
    encoder: Encoder, text_sets: Sequence[tuple[str, Sequence[str]]], modes: Sequence[str]
) -> int:
    """One transformer pass per (what, texts) set pools it every way in ``modes`` and stores each under
    the key that pooling's own job computes, so a sweep's other poolings encode nothing. Applies to
    Transformer -> Pooling [-> Normalize] encoders; returns the texts run through the transformer."""
    import torch
    from sentence_transformers.models import Normalize

    model, cache = encoder.model, encoder.cache
    mods = list(model)
    if cache.root is None or not modes:
        return 0
    if [type(m).__name__ for m in mods] not in (POOLED[:2], POOLED):
        log.info("Pooling prefetch skipped: the encoder is not Transformer -> Pooling [-> Normalize].")
        return 0
    dim, tail = mods[0].get_embedding_dimension(), [Normalize()] if len(mods) == 3 else []  # as build_encoder
    heads = {
        m: [mods[1] if mods[1].pooling_mode == m else build_pooling(dim, m), *tail]
        for m in dict.fromkeys(modes)
    }
    variants = {m: _like(model, [mods[0], *head]) for m, head in heads.items()}
    shared = weights_digest(model)  # poolings have no parameters: one hash of the weights serves all
    wp = encoder.settings.weight_precision
    keys = {m: encoder_key(v, encoder.tag, wp, weights=shared) for m, v in variants.items()}

    class AllPoolings(torch.nn.Module):  # its sentence embedding: every missing pooling's, concatenated
        def __init__(self, missing: list[str]) -> None:
            super().__init__()
            self.heads = torch.nn.ModuleList(torch.nn.Sequential(*heads[m]) for m in missing)

        def forward(self, features: dict) -> dict:
            outs = [apply_head(head, dict(features))["sentence_embedding"] for head in self.heads]
            return features | {"sentence_embedding": torch.cat(outs, dim=-1)}

    n_run = 0
    for what, texts in text_sets:
        missing = [m for m in heads if not cache.has(entry_key(keys[m], texts))]
        if len(missing) < 2:  # one pooling missing: its own job encodes it just as fast
            continue
        combined = _like(model, [model[0], AllPoolings(missing)])
        emb, stats = encoder.replace(model=combined, cache=EmbeddingCache(None)).encode_cached(
            texts, what=what
        )
        info = dict(what=what, n=len(texts), pooling_prefetch=missing, encode_stats=asdict(stats))
        bounds = np.cumsum([0] + [variants[m].get_embedding_dimension() for m in missing])
        for mode, start, stop in zip(missing, bounds[:-1], bounds[1:], strict=True):
            cache.put(entry_key(keys[mode], texts), emb[:, start:stop], info)
        cache.stats.n_encoded += len(texts)
        n_run += len(texts)
        log.info("Pooled %d %s once for %s: one pass instead of %d.", len(texts), what, missing, len(missing))
    return n_run
