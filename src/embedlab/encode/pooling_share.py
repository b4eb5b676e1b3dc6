"""One transformer pass for every pooling of a sweep: :func:`prefetch_poolings` pools the token
embeddings every requested way and stores each result under the key that pooling's own job computes,
so those jobs encode nothing. Applies to Transformer -> Pooling [-> Normalize] encoders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from embedlab.encode.cache import EmbeddingCache, encoder_key, entry_key, weights_digest
from embedlab.encode.encoder import Encoder
from embedlab.models.pooling import apply_head, build_pooling

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


def pooling_variants(
    model: SentenceTransformer, modes: Sequence[str]
) -> dict[str, SentenceTransformer] | None:
    """{mode: the same encoder with that pooling}, sharing the transformer; None for other chains."""
    from sentence_transformers.models import Normalize

    mods = list(model)
    kinds = [type(m).__name__ for m in mods]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return None
    normalize = kinds[-1] == "Normalize"
    dim = mods[0].get_embedding_dimension()  # as build_encoder sizes its Pooling
    variants = {}
    for mode in dict.fromkeys(modes):
        pool = mods[1] if mods[1].pooling_mode == mode else build_pooling(dim, mode)
        variants[mode] = _like(model, [mods[0], pool] + ([Normalize()] if normalize else []))
    return variants


def _like(model: SentenceTransformer, modules: list) -> SentenceTransformer:
    """A SentenceTransformer of ``modules`` on ``model``'s device, with its token limit."""
    from sentence_transformers import SentenceTransformer

    out = SentenceTransformer(modules=modules, device=str(model.device))
    out.max_seq_length = model.max_seq_length
    return out


def _all_poolings(variants: dict[str, SentenceTransformer]):
    """A last module pooling every way at once: its sentence embedding concatenates the poolings."""
    import torch

    class AllPoolings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = torch.nn.ModuleList(torch.nn.Sequential(*list(v)[1:]) for v in variants.values())

        def forward(self, features: dict) -> dict:
            outs = [apply_head(head, dict(features))["sentence_embedding"] for head in self.heads]
            features["sentence_embedding"] = torch.cat(outs, dim=-1)
            return features

    return AllPoolings()


def prefetch_poolings(
    encoder: Encoder, text_sets: Sequence[tuple[str, Sequence[str]]], modes: Sequence[str]
) -> int:
    """Fill ``encoder.cache`` for every pooling in ``modes``, one transformer pass per (what, texts)
    set (each one entry, as the evaluation asks for it); returns the texts run through the transformer."""
    model, cache = encoder.model, encoder.cache
    if cache.root is None or not modes:
        return 0
    variants = pooling_variants(model, modes)
    if variants is None:
        log.info("Pooling prefetch skipped: the encoder is not Transformer -> Pooling [-> Normalize].")
        return 0
    shared = weights_digest(model)  # poolings have no parameters: one hash of the weights serves all
    wp = encoder.settings.weight_precision
    keys = {m: encoder_key(v, encoder.tag, wp, weights=shared) for m, v in variants.items()}
    n_run = 0
    for what, texts in text_sets:
        missing = {m: v for m, v in variants.items() if not cache.has(entry_key(keys[m], texts))}
        if len(missing) < 2:  # one pooling missing: its own job encodes it just as fast
            continue
        combined = _like(model, [model[0], _all_poolings(missing)])
        uncached = encoder.replace(model=combined, cache=EmbeddingCache(None))
        emb, stats = uncached.encode_chunked(texts, what=what)
        n = len(texts)
        info = dict(what=what, n=n, pooling_prefetch=list(missing), encode_stats=asdict(stats))
        start = 0
        for mode, variant in missing.items():
            d = variant.get_embedding_dimension()
            cache.put(entry_key(keys[mode], texts), emb[:, start : start + d], info)
            start += d
        cache.stats.n_encoded += n
        n_run += n
        names, k = ", ".join(missing), len(missing)
        log.info("Pooled %d %s once for %s: one transformer pass instead of %d.", n, what, names, k)
    return n_run
