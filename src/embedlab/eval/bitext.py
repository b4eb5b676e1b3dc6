"""Bitext mining (Tatoeba): nearest-neighbour translation retrieval accuracy in both directions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedlab.data.retrieval import load_tatoeba
from embedlab.eval.arrays import as_numpy, topk_dot, unit_rows

if TYPE_CHECKING:
    from embedlab.encode.encoder import Encoder

BitextMatch = Literal["index", "text"]


@dataclass(frozen=True)
class BitextAccuracy:
    """Nearest-neighbour translation retrieval accuracy in both directions."""

    src2tgt: float
    tgt2src: float
    mean: float
    n: int
    match: str  # "index" or "text"


def bitext_retrieval_accuracy(
    src_emb: Any,
    tgt_emb: Any,
    *,
    match: BitextMatch = "index",
    src_texts: Sequence[str] | None = None,
    tgt_texts: Sequence[str] | None = None,
    chunk_size: int = 1024,
) -> BitextAccuracy:
    """Share of lines whose cosine nearest neighbour is their aligned line, both ways; ties to the
    lowest index. ``match="index"``: the exact line (MTEB / LASER Tatoeba). ``"text"``: a line with
    the aligned line's text also counts (ST's ``TranslationEvaluator``); needs the texts."""
    s = as_numpy(src_emb, np.float32)
    t = as_numpy(tgt_emb, np.float32)
    if s.shape != t.shape or s.ndim != 2 or len(s) == 0:
        raise ValueError(
            f"Aligned embeddings must have equal non-empty 2-D shapes, got {s.shape} and {t.shape}"
        )
    if match == "text" and (src_texts is None or tgt_texts is None):
        raise ValueError("match='text' needs src_texts and tgt_texts")
    if match not in ("index", "text"):
        raise ValueError(f"match must be 'index' or 'text', got {match!r}")
    s, t = unit_rows(s), unit_rows(t)

    def accuracy(a: np.ndarray, b: np.ndarray, b_texts: Sequence[str] | None) -> float:
        nn = topk_dot(a, b, 1, chunk_size=chunk_size)[1][:, 0]
        if match == "index":
            return float((nn == np.arange(len(nn))).mean())
        assert b_texts is not None
        return float(np.mean([b_texts[j] == b_texts[i] for i, j in enumerate(nn)]))

    s2t, t2s = accuracy(s, t, tgt_texts), accuracy(t, s, src_texts)
    return BitextAccuracy(src2tgt=s2t, tgt2src=t2s, mean=(s2t + t2s) / 2, n=len(s), match=match)


def evaluate_bitext(
    encoder: Encoder, langs: Sequence[str], root: str
) -> tuple[dict[str, float], dict[str, str]]:
    """Tatoeba bitext retrieval for each language paired with English, both ways (the exact aligned line
    must win, as LASER/MTEB): ``src2eng_accuracy@<lang>``... and their means; returns (metrics, revisions)."""
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
