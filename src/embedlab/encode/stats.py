"""Encode texts once, counting (never hiding) truncation at the model's token limit."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


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


def token_lengths(model: SentenceTransformer, texts: Sequence[str]) -> np.ndarray:
    """Token count of each text with special tokens and without truncation."""
    tok = model.tokenizer
    enc = tok(list(texts), add_special_tokens=True, truncation=False, verbose=False)
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(texts))


def count_truncated(lengths: np.ndarray, limit: int, what: str) -> int:
    """How many texts exceed ``limit`` tokens; logs a warning naming the fix when any do."""
    n_trunc = int((lengths > limit).sum())
    if n_trunc:
        log.warning(
            "%d of %d distinct %s exceed the model's limit of %d tokens (longest: %d) and are "
            "truncated to it; raise model.max_seq_length (up to the model's positions) to keep more.",
            n_trunc, len(lengths), what, limit, int(lengths.max()),
        )  # fmt: skip
    return n_trunc


def check_texts(texts: Sequence[str], what: str = "texts") -> None:
    """Reject texts that cannot be embedded meaningfully, naming the first offenders."""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        from embedlab.errors import DataError

        raise DataError(
            f"{len(bad)} of {len(texts)} {what} are empty or whitespace (positions {bad[:10]}). "
            f"Remove them or replace them with real text before encoding."
        )


Backend = Literal["fast", "sentence-transformers"]
# The backend encode() uses. Library calls get the reference path (sentence-transformers'
# own encode(), float32); run.py switches a run to the configured one (`encode:` in
# train.yaml, by default the fast bf16 path) with `encoding(...)`.
_ACTIVE: dict[str, Any] = {"backend": "sentence-transformers", "options": None}


@contextlib.contextmanager
def encoding(backend: Backend, options: Any = None) -> Iterator[None]:
    """Use ``backend`` (with fast_encode ``options``) for every encode() inside the block."""
    if backend not in ("fast", "sentence-transformers"):
        from embedlab.errors import ConfigError

        raise ConfigError(f"Unknown encode.backend '{backend}'. Choose fast or sentence-transformers.")
    saved = dict(_ACTIVE)
    _ACTIVE.update(backend=backend, options=options)
    try:
        yield
    finally:
        _ACTIVE.update(saved)


def encoding_tag() -> str:
    """Names the active backend and precision (part of embedding cache keys)."""
    if _ACTIVE["backend"] == "fast":
        opts = _ACTIVE["options"]
        return f"fast-{getattr(opts, 'precision', 'bf16')}"
    return "st-fp32"


def encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    what: str = "texts",
) -> tuple[np.ndarray, EncodeStats]:
    """Embed ``texts`` (duplicates are encoded once); returns (N, D) float32 and stats."""
    if _ACTIVE["backend"] == "fast":
        from embedlab.eval.fast_encode import fast_encode

        return fast_encode(model, texts, batch_size=batch_size, what=what, options=_ACTIVE["options"])
    check_texts(texts, what)
    unique = list(dict.fromkeys(texts))
    limit = int(model.max_seq_length or 512)
    lengths = token_lengths(model, unique)
    n_trunc = count_truncated(lengths, limit, what)
    start = time.perf_counter()
    emb = model.encode(unique, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    seconds = time.perf_counter() - start
    index = {t: i for i, t in enumerate(unique)}
    out = np.asarray(emb, dtype=np.float32)[[index[t] for t in texts]]
    stats = EncodeStats(len(texts), len(unique), n_trunc, int(lengths.max(initial=0)), limit, seconds)
    return out, stats
