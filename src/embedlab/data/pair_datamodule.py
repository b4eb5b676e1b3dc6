"""A LightningDataModule over scored sentence pairs (any STS spec). Batches carry raw texts
(the module tokenizes), so one datamodule serves every model; training batches resume
mid-epoch (embedlab.data.resumable)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from embedlab.data.resumable import SeededDataModule, resumable_loader
from embedlab.data.sts import SPLITS, PairSplit, STSData, STSSpec, load_sts


def _pairs(split: PairSplit) -> list[tuple[str, str, float]]:
    return list(zip(split.sentence1, split.sentence2, split.normalized_scores(), strict=True))


def collate_pairs(items: Sequence[tuple[str, str, float]]) -> dict[str, object]:
    s1, s2, labels = zip(*items, strict=True)
    return {"sentence1": list(s1), "sentence2": list(s2), "label": torch.tensor(labels, dtype=torch.float32)}


class PairDataModule(SeededDataModule):
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
            self.data = load_sts(self.spec, SPLITS)

    def split(self, name: str) -> PairSplit:
        self.setup()
        return self.data.splits[name]  # type: ignore[union-attr]

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        # Its own generator: iterating a loader never draws from the global torch RNG (dropout masks)
        size, generator = self.batch_size if shuffle else self.eval_batch_size, torch.Generator()
        opts = {"collate_fn": collate_pairs, "num_workers": self.num_workers}
        return DataLoader(
            _pairs(self.split(name)), size, shuffle, generator=generator.manual_seed(self.seed), **opts
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches that resume mid-epoch (the order of a seeded shuffle=True loader).
        Under DDP Lightning's DistributedSampler needs a plain loader: a resume restarts the epoch."""
        if self.trainer is not None and self.trainer.world_size > 1:
            return self._loader("train", shuffle=True)
        pairs, workers = _pairs(self.split("train")), self.num_workers
        return resumable_loader(
            pairs, len(pairs), self.batch_size, self.seed, collate_fn=collate_pairs, num_workers=workers
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
