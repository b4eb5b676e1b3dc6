"""Out-of-vocabulary words: how tokenizers cut them (:func:`tokenizer_stats`, and
:func:`vocabulary_stats` for word-level fastText), and what seeded typos (:func:`add_typos`) do to
retrieval (:func:`retrieval_under_typos`). A word is a run of ``\\w+`` characters."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from embedlab.eval.retrieval_task import RetrievalEvalSettings, evaluate_retrieval

if TYPE_CHECKING:
    from embedlab.data.retrieval import RetrievalSet
    from embedlab.encode.encoder import Encoder

WORD_RE = re.compile(r"\w+")
Edit = Literal["insert", "delete", "swap", "substitute"]
EDITS: tuple[Edit, ...] = ("insert", "delete", "swap", "substitute")


@dataclass(frozen=True)
class TokenizerStats:
    """Word counts are over running words (a word occurring 5 times counts 5 times)."""

    n_texts: int
    n_words: int
    n_distinct_words: int
    tokens_per_word: float  # subword tokens per word
    split_word_rate: float  # share of words cut into more than one token
    unk_word_rate: float  # share of words holding at least one unknown token
    n_text_tokens: int  # tokens of the whole texts (punctuation and symbols included)
    unk_token_rate: float  # share of those that are the unknown token
    split_examples: tuple[tuple[str, tuple[str, ...]], ...] = ()  # most frequent split words, pieces
    unk_examples: tuple[tuple[str, int], ...] = ()  # most frequent text pieces that became unknown

    as_dict = asdict


def word_counts(texts: Sequence[str]) -> Counter[str]:  # running words
    return Counter(w for t in texts for w in WORD_RE.findall(t))


def tokenizer_stats(tokenizer: Any, texts: Sequence[str], *, n_examples: int = 5) -> TokenizerStats:
    """Unknown-token rate, tokens per word and split rate of a Hugging Face tokenizer on ``texts``.
    Words are tokenized once each, weighted by count; the unknown-token rate tokenizes whole texts,
    since symbols and emoji (not words) are where a WordPiece vocabulary runs out."""
    counts = word_counts(texts)
    if not counts:
        raise ValueError("tokenizer_stats: the texts hold no words.")
    unk = tokenizer.unk_token_id  # None for byte-level tokenizers: nothing is unknown
    distinct = list(counts)
    ids = tokenizer(distinct, add_special_tokens=False, verbose=False)["input_ids"]
    c = [counts[w] for w in distinct]
    n_words = sum(c)
    n_tokens = sum(n * len(p) for n, p in zip(c, ids, strict=True))
    n_unk_words = sum(n for n, p in zip(c, ids, strict=True) if unk is not None and unk in p)
    split = sorted((-n, w, p) for n, w, p in zip(c, distinct, ids, strict=True) if len(p) > 1)
    n_split = -sum(n for n, _, _ in split)
    fast = bool(getattr(tokenizer, "is_fast", False))
    enc = tokenizer(list(texts), add_special_tokens=False, verbose=False, return_offsets_mapping=fast)
    n_text_tokens = sum(map(len, enc["input_ids"]))
    at = [
        (i, k)
        for i, pieces in enumerate(enc["input_ids"])
        for k, p in enumerate(pieces)
        if unk is not None and p == unk
    ]
    n_unk = len(at)
    unk_pieces = Counter(texts[i][slice(*enc["offset_mapping"][i][k])] for i, k in at) if fast else Counter()
    rates = (n_tokens / n_words, n_split / n_words, n_unk_words / n_words)
    splits = tuple((w, tuple(tokenizer.convert_ids_to_tokens(p))) for _, w, p in split[:n_examples])
    unks = tuple(unk_pieces.most_common(n_examples))
    unk_rate = n_unk / max(n_text_tokens, 1)
    return TokenizerStats(len(texts), n_words, len(distinct), *rates, n_text_tokens, unk_rate, splits, unks)


@dataclass(frozen=True)
class VocabularyStats:
    n_words: int
    n_distinct_words: int
    oov_word_rate: float  # share of running words not in the vocabulary
    oov_distinct_rate: float  # share of distinct words not in the vocabulary


def vocabulary_stats(
    vocab: Collection[str], texts: Sequence[str], *, lowercase: bool = True
) -> VocabularyStats:
    """Out-of-vocabulary rate of a word-level model (``vocab``: its known words)."""
    counts = word_counts([t.lower() for t in texts] if lowercase else texts)
    if not counts:
        raise ValueError("vocabulary_stats: the texts hold no words.")
    n = sum(counts.values())
    oov = [w for w in counts if w not in vocab]
    return VocabularyStats(n, len(counts), sum(counts[w] for w in oov) / n, len(oov) / len(counts))


@dataclass(frozen=True)
class NoisyTexts:
    texts: list[str]
    rate: float
    n_eligible: int  # words that can take a typo (alphabetic, >= min_len letters)
    n_edited: int  # round(rate * n_eligible) of them, each with exactly one edit
    edits: dict[str, int]  # edit kind -> count


def _edit_word(word: str, rng: random.Random, alphabet: str) -> tuple[str, Edit]:
    """One random edit that always changes the word (Damerau-Levenshtein distance 1)."""
    kind: Edit = rng.choice(EDITS)
    swappable = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
    if kind == "swap" and not swappable:  # "aa": a swap would change nothing
        kind = "substitute"
    if kind == "insert":
        pos = rng.randrange(len(word) + 1)
        return word[:pos] + rng.choice(alphabet) + word[pos:], kind
    if kind == "delete":
        pos = rng.randrange(len(word))
        return word[:pos] + word[pos + 1 :], kind
    if kind == "swap":
        i = rng.choice(swappable)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :], kind
    pos = rng.randrange(len(word))
    old = word[pos]
    new = rng.choice([a for a in alphabet if a != old.lower()])
    return word[:pos] + (new.upper() if old.isupper() else new) + word[pos + 1 :], kind


def add_typos(
    texts: Sequence[str],
    rate: float,
    seed: int,
    *,
    min_len: int = 2,
    alphabet: str = string.ascii_lowercase,
) -> NoisyTexts:
    """Give exactly ``round(rate * n)`` of the ``n`` eligible (alphabetic, ``min_len``+ letters) words
    one typo each. Words and edits depend only on ``seed`` and position, so levels nest (the words
    edited at 5% are edited the same way at 10%); word boundaries and counts are kept."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"typo rate must be in [0, 1], got {rate}.")
    if min_len < 2:
        raise ValueError(f"min_len must be >= 2 (a 1-letter word cannot take every edit), got {min_len}.")
    spans = [
        (i, m.start(), m.end())
        for i, text in enumerate(texts)
        for m in WORD_RE.finditer(text)
        if m.end() - m.start() >= min_len and m.group().isalpha()
    ]
    order = random.Random(f"typo-order:{seed}").sample(range(len(spans)), len(spans))
    n_edit = round(rate * len(spans))
    chosen = sorted(order[:n_edit], reverse=True)  # right to left: earlier offsets stay valid
    out = list(texts)
    kinds: Counter[str] = Counter()
    for j in chosen:
        i, start, end = spans[j]
        new, kind = _edit_word(out[i][start:end], random.Random(f"typo-edit:{seed}:{j}"), alphabet)
        out[i] = out[i][:start] + new + out[i][end:]
        kinds[kind] += 1
    return NoisyTexts(out, rate, len(spans), n_edit, dict(sorted(kinds.items())))


def retrieval_under_typos(
    encoder: Encoder,
    data: RetrievalSet,
    rates: Sequence[float],
    seeds: Sequence[int],
    settings: RetrievalEvalSettings,
) -> list[dict[str, Any]]:
    """One row per (rate, seed): the retrieval metrics with typo'd queries (rate 0 once). The corpus
    is the same at every level, so after the first its embeddings come from the encoder's cache."""
    qids = data.query_ids
    clean = [data.queries[q] for q in qids]
    rows: list[dict[str, Any]] = []
    for rate in rates:
        for seed in seeds if rate > 0 else seeds[:1]:
            noisy = add_typos(clean, rate, seed)
            rset = replace(data, queries=dict(zip(qids, noisy.texts, strict=True)))
            result = evaluate_retrieval(encoder, rset, settings)
            counts = {"n_eligible_words": noisy.n_eligible, "n_edited_words": noisy.n_edited}
            rows.append({"rate": rate, "seed": seed, **counts, **result.metrics})
    return rows
