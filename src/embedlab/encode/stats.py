"""What an encode did (texts, duplicates, truncation, time) and the input checks every path shares."""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


def count_truncated(lengths: np.ndarray, limit: int, what: str) -> int:
    """How many texts exceed ``limit`` tokens; logs a warning naming the fix when any do."""
    n_trunc = int((lengths > limit).sum())
    if n_trunc:
        log.warning(TRUNCATION_WARNING, n_trunc, len(lengths), what, limit, int(lengths.max()))
    return n_trunc


def check_texts(texts: Sequence[str], what: str = "texts") -> list[str]:
    """Reject empty texts, naming the first offenders; returns the distinct texts in first-seen
    order (every encode path runs each text once)."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(
            f"{len(bad)} of {len(texts)} {what} are empty or whitespace (positions {bad[:10]}). "
            f"Remove them or replace them with real text before encoding."
        )
    return list(dict.fromkeys(texts))


def in_input_order(emb: np.ndarray, unique: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Rows of ``emb`` (one per distinct text, in ``unique`` order) for every text of ``texts``."""
    index = {t: i for i, t in enumerate(unique)}
    return np.asarray(emb, dtype=np.float32)[[index[t] for t in texts]]
