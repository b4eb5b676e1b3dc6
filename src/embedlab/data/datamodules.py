"""The LightningDataModules of the three training tasks, on one seeded base: scored pairs (STS),
(query, positive[, hard negatives]) ranking examples whose batches never hold a text twice (so an
in-batch "negative" is never a copy of the positive), and masked-LM texts. Pair and ranking batches
carry raw texts (the module tokenizes); every training loader resumes mid-epoch."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from embedlab.console import third_party_bars
from embedlab.data.mlm import MLMCollator, TokenizedTexts, masked_batches, tokenize_texts
from embedlab.data.resumable import ResumableBatches, ResumableDataLoader, SeededPermutation, resumable_loader
from embedlab.data.retrieval import RetrievalSet
from embedlab.data.sts import PairSplit, STSData, STSSpec, load_sts
from embedlab.errors import DataError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


class SeededDataModule(L.LightningDataModule):
    """The batch sizes, seed and workers every embedlab datamodule takes, checked once."""

    def __init__(self, batch_size: int, eval_batch_size: int, seed: int, num_workers: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or eval_batch_size < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch_size} and {eval_batch_size}.")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.num_workers = seed, num_workers

    def resumable(self, items: list[Any], collate_fn: Any) -> ResumableDataLoader:
        """Shuffled training batches in a seeded ``DataLoader(shuffle=True)``'s order (recorded runs keep
        theirs), resumable mid-epoch."""
        opts = {"collate_fn": collate_fn, "num_workers": self.num_workers, **self.rank_and_world()}
        return resumable_loader(items, len(items), self.batch_size, self.seed, **opts)

    def rank_and_world(self) -> dict[str, int]:
        """This process's DDP rank and the world size (0 and 1 outside a trainer)."""
        trainer = self.trainer
        return (
            {"rank": trainer.global_rank, "world": trainer.world_size} if trainer else {"rank": 0, "world": 1}
        )


def collate_pairs(items: Sequence[tuple[str, str, float]]) -> dict[str, object]:
    s1, s2, labels = zip(*items, strict=True)
    return {"sentence1": list(s1), "sentence2": list(s2), "label": torch.tensor(labels, dtype=torch.float32)}


class PairDataModule(SeededDataModule):
    """Scored sentence pairs of any STS spec; labels are the scores rescaled to [0, 1]."""

    def __init__(
        self,
        spec: STSSpec,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        seed: int = 42,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed, num_workers)
        self.spec = spec
        self.data: STSData | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.data is None:
            self.data = load_sts(self.spec)

    def split(self, name: str) -> PairSplit:
        self.setup()
        return self.data.splits[name]  # type: ignore[union-attr]

    def _pairs(self, name: str) -> list[tuple[str, str, float]]:
        split = self.split(name)
        return list(zip(split.sentence1, split.sentence2, split.normalized_scores(), strict=True))

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        # Its own generator: iterating a loader never draws from the global torch RNG (dropout masks).
        # Keywords only: under DDP Lightning re-creates the loader from its keyword arguments.
        size, generator = self.batch_size if shuffle else self.eval_batch_size, torch.Generator()
        opts = {"collate_fn": collate_pairs, "num_workers": self.num_workers}
        return DataLoader(
            self._pairs(name),
            batch_size=size,
            shuffle=shuffle,
            generator=generator.manual_seed(self.seed),
            **opts,
        )

    def train_dataloader(self) -> DataLoader:
        return self.resumable(self._pairs("train"), collate_pairs)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


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

    def subset(ids: set[str], tag: str) -> RetrievalSet:
        queries, qrels = ({q: v for q, v in d.items() if q in ids} for d in (data.queries, data.qrels))
        return replace(data, name=f"{data.name}/{tag}", queries=queries, qrels=qrels)

    return subset(set(qids[n_val:]), "train"), subset(set(qids[:n_val]), "val")


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
    with third_party_bars():  # its encode bars are always on: follow EMBEDLAB_PROGRESS / the terminal
        mined = mine_hard_negatives(
            ds, model, corpus=list(corpus), batch_size=batch_size, verbose=False, **opts
        )
    neg_cols = [c for c in mined.column_names if c.startswith("negative")]
    by_pair = {(row["anchor"], row["positive"]): tuple(row[c] for c in neg_cols) for row in mined}
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


def collate_ranking(items: Sequence[RankingExample]) -> dict[str, Any]:
    n_neg = min(len(e.negatives) for e in items)  # a rectangular batch: (B, 1 + n_neg) candidates
    return {
        "anchor": [e.query for e in items],
        "positive": [e.positive for e in items],
        "negatives": [[e.negatives[j] for e in items] for j in range(n_neg)],  # n_neg lists of B
    }


class RankingDataModule(SeededDataModule):
    """Train-only datamodule over ranking examples (validation is a retrieval evaluation)."""

    def __init__(self, examples: Sequence[RankingExample], batch_size: int = 32, seed: int = 42) -> None:
        if batch_size < 2:
            raise ValueError("In-batch negatives need batch_size >= 2.")
        super().__init__(batch_size, batch_size, seed)
        self.examples = list(examples)

    def train_dataloader(self) -> DataLoader:
        batches = NoDuplicateBatches(self.examples, self.batch_size, self.seed)
        batches.shard(**self.rank_and_world())
        return ResumableDataLoader(self.examples, batch_sampler=batches, collate_fn=collate_ranking)


class MLMDataModule(SeededDataModule):
    """Train texts masked afresh each step (seeded); held-out texts masked once (fixed)."""

    def __init__(
        self,
        tokenizer: Any,
        train_texts: Sequence[str],
        val_texts: Sequence[str],
        *,
        max_length: int = 128,
        batch_size: int = 16,
        eval_batch_size: int = 32,
        mlm_probability: float = 0.15,
        whole_word_mask: bool = False,
        seed: int = 42,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed, num_workers)
        self.tokenizer, self.train_texts, self.val_texts = tokenizer, list(train_texts), list(val_texts)
        self.max_length, self.whole_word_mask = max_length, whole_word_mask
        self.collate = {"mlm_probability": mlm_probability, "whole_word_mask": whole_word_mask, "seed": seed}
        self._collator()  # checks the masking settings now
        self.train_tokens: TokenizedTexts | None = None
        self.val_tokens: TokenizedTexts | None = None
        self._val_batches: list[dict[str, torch.Tensor]] = []

    def _collator(self) -> MLMCollator:
        return MLMCollator(self.tokenizer, **self.collate)

    def _tokenize(self, texts: list[str], what: str) -> TokenizedTexts:
        opts = {"max_length": self.max_length, "whole_word_mask": self.whole_word_mask, "what": what}
        return tokenize_texts(self.tokenizer, texts, **opts)

    def setup(self, stage: str | None = None) -> None:
        if self.train_tokens is None:
            self.train_tokens = self._tokenize(self.train_texts, "training texts")
        if self.val_tokens is None and self.val_texts:
            self.val_tokens = self._tokenize(self.val_texts, "held-out texts")
            self._val_batches = masked_batches(self._collator(), self.val_tokens, self.eval_batch_size)

    def train_dataloader(self) -> DataLoader:
        """The collator's masking generator travels in the loader's state. With worker processes the
        masks are drawn in the workers, which a resume cannot replay."""
        self.setup()
        return self.resumable(list(self.train_tokens.features), self._collator())  # type: ignore[union-attr]

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self._val_batches, batch_size=None)  # already batched and masked
