"""What an encode did (texts, duplicates, truncation, time), and the input handling both backends share:
empty texts refused, each distinct text run once, truncation counted, rows back in input order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from embedlab.errors import DataError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)
TRUNCATION_WARNING = (
    "%d of %d distinct %s exceed the model's limit of %d tokens (longest: %d) and are "
    "truncated to it; raise model.max_seq_length (up to the model's positions) to keep more."
)
# (distinct texts, token limit) -> ((n, D) embeddings, (n,) token counts before truncation)
EmbedFn = Callable[[list[str], int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class EncodeStats:
    n_texts: int  # texts asked for
    n_encoded: int  # distinct texts actually run through the model
    n_truncated: int  # distinct texts longer than the model's limit (cut at max_seq_length)
    max_tokens: int  # longest text, in tokens, before truncation
    max_seq_length: int
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def total(cls, parts: Sequence[EncodeStats], max_seq_length: int) -> EncodeStats:
        """The stats of several encodes of one list (its chunks) added up."""
        counts = [sum(getattr(p, f) for p in parts) for f in ("n_texts", "n_encoded", "n_truncated")]
        max_tokens = max((p.max_tokens for p in parts), default=0)
        return cls(*counts, max_tokens, max_seq_length, sum(p.seconds for p in parts))


def token_lengths(model: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Token count of each text with special tokens and without truncation."""
    enc = model.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))


def encode_distinct(
    model: SentenceTransformer, texts: Sequence[str], what: str, embed: EmbedFn
) -> tuple[np.ndarray, EncodeStats]:
    """``embed`` on each distinct text once (empty ones refused, naming the first); (N, D) float32 in
    input order and the stats. Warns, naming the fix, when texts are truncated."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"{len(bad)} of {len(texts)} {what} are empty or whitespace (positions {bad[:10]}). "
            f"Remove them or replace them with real text before encoding."
        )
    unique, limit = list(dict.fromkeys(texts)), int(model.max_seq_length or 512)
    start = time.perf_counter()
    if unique:
        emb, lengths = embed(unique, limit)
    else:  # the tokenizer refuses an empty list
        emb, lengths = np.zeros((0, model.get_embedding_dimension() or 0), np.float32), np.zeros(0, np.int64)
    seconds = time.perf_counter() - start
    n_trunc = int((lengths > limit).sum())
    if n_trunc:
        log.warning(TRUNCATION_WARNING, n_trunc, len(unique), what, limit, int(lengths.max()))
    index = {t: i for i, t in enumerate(unique)}
    stats = EncodeStats(len(texts), len(unique), n_trunc, int(lengths.max(initial=0)), limit, seconds)
    return np.asarray(emb, dtype=np.float32)[[index[t] for t in texts]], stats
