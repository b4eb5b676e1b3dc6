"""BM25, the lexical baseline every dense configuration must beat (bm25s + PyStemmer).

Tokenizer: scikit-learn's ``(?u)\\b\\w\\w+\\b`` on lower-cased text (bm25s's default), English stop
words (bm25s's list), Snowball English stemmer; scoring: Lucene's BM25 variant, k1 = 1.5, b = 0.75,
bm25s's defaults and the setting of its published BEIR table (SciFact nDCG@10 0.686).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embedlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BM25Settings:
    """How documents and queries are tokenised and scored (recorded in results meta)."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"  # bm25s: lucene | robertson | atire | bm25l | bm25+
    stemmer: str | None = "english"  # a PyStemmer (Snowball) language, or None
    stopwords: str | None = "en"  # a bm25s stop-word list name, or None

    def __post_init__(self) -> None:
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")


def bm25_rank(
    documents: Sequence[str], queries: Sequence[str], k: int, settings: BM25Settings = BM25Settings()
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` BM25 ranking of ``documents`` for each query: (scores (Q, k), doc indices (Q, k)).

    Rows are best first, ties to the lower document index; a query with no indexed term gets
    score-0 entries (counted in the log). ``k`` larger than the corpus pads with -1.
    """
    import bm25s
    import Stemmer

    if not documents:
        raise DataError("BM25 needs a non-empty corpus.")
    stemmer = Stemmer.Stemmer(settings.stemmer) if settings.stemmer else None

    def tokens(texts: Sequence[str]):
        return bm25s.tokenize(list(texts), stopwords=settings.stopwords, stemmer=stemmer, show_progress=False)

    retriever = bm25s.BM25(k1=settings.k1, b=settings.b, method=settings.method)
    retriever.index(tokens(documents), show_progress=False)
    depth = min(k, len(documents))
    ids, scores = retriever.retrieve(tokens(queries), k=depth, show_progress=False, n_threads=1)
    scores, ids = np.asarray(scores, dtype=np.float32), np.asarray(ids, dtype=np.int64)
    order = np.lexsort((ids, -scores), axis=1)  # bm25s leaves ties in any order
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    n_blank = int((scores.max(axis=1, initial=0.0) <= 0).sum())
    if n_blank:
        log.warning("BM25: %d of %d queries match no indexed term (all scores 0)", n_blank, len(queries))
    if depth < k:
        scores = np.pad(scores, ((0, 0), (0, k - depth)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, k - depth)), constant_values=-1)
    return scores, ids
