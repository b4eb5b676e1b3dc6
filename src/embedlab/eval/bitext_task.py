"""Tatoeba bitext retrieval: for each language paired with English, does a sentence's
nearest neighbour among the other side's sentences turn out to be its translation?
Both directions, LASER/MTEB convention (the exact aligned line must win)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedlab.encode.encoder import Encoder


def evaluate_bitext(
    encoder: Encoder, langs: Sequence[str], root: str
) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics ``<lang>2eng_accuracy@<lang>`` etc. plus their means; returns (metrics, revisions)."""
    from embedlab.data.retrieval import load_tatoeba
    from embedlab.eval.retrieval import bitext_retrieval_accuracy

    metrics: dict[str, float] = {}
    revisions: dict[str, str] = {}
    for lang in langs:
        bt = load_tatoeba(lang, root)
        src, _ = encoder.encode_cached(bt.sentences, what=lang)
        eng, _ = encoder.encode_cached(bt.english, what="eng")
        acc = bitext_retrieval_accuracy(src, eng)
        metrics[f"src2eng_accuracy@{lang}"] = acc.src2tgt
        metrics[f"eng2src_accuracy@{lang}"] = acc.tgt2src
        metrics[f"accuracy@{lang}"] = acc.mean
        revisions[lang] = bt.revision
    for name in ("src2eng_accuracy", "eng2src_accuracy", "accuracy"):
        values = [metrics[f"{name}@{lang}"] for lang in langs]
        metrics[name] = sum(values) / len(values)
    return metrics, revisions
