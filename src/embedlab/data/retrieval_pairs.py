"""Retrieval fine-tuning data: (query, positive[, hard negatives]) examples from a retrieval
set's judgements, a seeded held-out share of queries, hard negatives mined with ST's
``mine_hard_negatives``, and batches that never hold the same text twice (so an in-batch
"negative" is never a copy of the positive)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import lightning as L
from torch.utils.data import DataLoader

from embedlab.data.resumable import ResumableBatches, ResumableDataLoader, SeededPermutation
from embedlab.data.retrieval import RetrievalSet
from embedlab.errors import DataError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankingExample:
    query: str
    positive: str
    negatives: tuple[str, ...] = ()


def split_queries(data: RetrievalSet, val_fraction: float, seed: int) -> tuple[RetrievalSet, RetrievalSet]:
    """Split a set's queries (not its corpus) into train and held-out validation, seeded."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    qids = sorted(data.queries)
    random.Random(seed).shuffle(qids)
    n_val = round(val_fraction * len(qids))
    val_ids, train_ids = set(qids[:n_val]), set(qids[n_val:])

    def subset(ids: set[str], tag: str) -> RetrievalSet:
        queries, qrels = ({q: v for q, v in d.items() if q in ids} for d in (data.queries, data.qrels))
        return replace(data, name=f"{data.name}/{tag}", queries=queries, qrels=qrels)

    return subset(train_ids, "train"), subset(val_ids, "val")


def ranking_examples(data: RetrievalSet) -> list[RankingExample]:
    """One example per (query, relevant document) judgement."""
    out = [
        RankingExample(data.queries[q], data.corpus[d])
        for q in sorted(data.queries)
        for d, rel in sorted(data.qrels.get(q, {}).items())
        if rel > 0 and d in data.corpus
    ]
    if not out:
        raise DataError(f"'{data.name}' yields no (query, relevant document) pairs to train on.")
    return out


def mine_negatives(
    examples: Sequence[RankingExample],
    model: SentenceTransformer,
    corpus: Sequence[str],
    *,
    num_negatives: int = 1,
    range_min: int = 10,
    range_max: int = 50,
    relative_margin: float | None = 0.05,
    batch_size: int = 64,
) -> list[RankingExample]:
    """Add hard negatives with ST's miner (NV-Retriever settings by default); examples that get none
    train on in-batch negatives (counted in a warning)."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    ds = Dataset.from_dict(
        {"anchor": [e.query for e in examples], "positive": [e.positive for e in examples]}
    )
    opts = {"range_min": range_min, "range_max": range_max, "relative_margin": relative_margin}
    opts |= {"num_negatives": num_negatives, "sampling_strategy": "top", "output_format": "n-tuple"}
    mined = mine_hard_negatives(ds, model, corpus=list(corpus), batch_size=batch_size, verbose=False, **opts)
    neg_cols = [c for c in mined.column_names if c.startswith("negative")]
    by_pair: dict[tuple[str, str], tuple[str, ...]] = {
        (row["anchor"], row["positive"]): tuple(row[c] for c in neg_cols) for row in mined
    }
    out = [replace(e, negatives=by_pair.get((e.query, e.positive), ())) for e in examples]
    missing = sum(1 for e in out if len(e.negatives) < num_negatives)
    if missing:
        msg = "%d of %d examples got fewer than %d hard negatives; they train with in-batch negatives only."
        log.warning(msg, missing, len(out), num_negatives)
    return out


class NoDuplicateBatches(ResumableBatches):
    """Shuffled batches in which no text appears twice: ``Random(seed + epoch)``'s order packed
    greedily, a function of (seed, epoch) only, so a mid-epoch resume is exact."""

    def __init__(self, examples: Sequence[RankingExample], batch_size: int, seed: int) -> None:
        self.examples = examples
        super().__init__(SeededPermutation(len(examples), seed, style="python"), batch_size, self._pack)

    def _pack(self, order: list[int]) -> list[list[int]]:
        out = []
        while order:
            batch, seen, rest = [], set(), []
            for i in order:
                e = self.examples[i]
                texts = {e.query, e.positive, *e.negatives}
                if len(batch) < self.batch_size and not texts & seen:
                    batch.append(i)
                    seen |= texts
                else:
                    rest.append(i)
            out.append(batch)
            order = rest
        return out

    def __len__(self) -> int:
        return len(self.batches())  # duplicates can force more than ceil(n / batch_size) batches


def collate_ranking(items: Sequence[RankingExample]) -> dict[str, Any]:
    n_neg = min(len(e.negatives) for e in items)  # a rectangular batch: (B, 1 + n_neg) candidates
    return {
        "anchor": [e.query for e in items],
        "positive": [e.positive for e in items],
        "negatives": [[e.negatives[j] for e in items] for j in range(n_neg)],  # n_neg lists of B
    }


class RankingDataModule(L.LightningDataModule):
    """Train-only datamodule over ranking examples (validation is a retrieval evaluation)."""

    def __init__(self, examples: Sequence[RankingExample], batch_size: int = 32, seed: int = 42) -> None:
        super().__init__()
        if batch_size < 2:
            raise ValueError("In-batch negatives need batch_size >= 2.")
        self.examples, self.batch_size, self.seed = list(examples), batch_size, seed

    def train_dataloader(self) -> DataLoader:
        return ResumableDataLoader(
            self.examples,
            batch_sampler=NoDuplicateBatches(self.examples, self.batch_size, self.seed),
            collate_fn=collate_ranking,
        )
