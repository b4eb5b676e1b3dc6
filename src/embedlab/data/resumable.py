"""Training batches that a run killed mid-epoch resumes exactly. No library does it: Lightning 2.x
restores its batch counter, but a plain DataLoader restarts the epoch. Lightning keeps a loader's
position only through its ``state_dict``, so here the batch order is a function of (seed, epoch)
(the sampler in ``.sampler`` gets Lightning's ``set_epoch``) and :class:`ResumableDataLoader`
checkpoints ``{epoch, batches_done}``; Lightning does not prefetch from a sized loader, so it is exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch.utils.data import DataLoader, DistributedSampler, Sampler

Pack = Callable[[list[int]], list[list[int]]]  # one epoch's index order -> its batches


class SeededPermutation(Sampler[int]):
    """A fresh shuffle of ``range(n)`` per epoch, a function of (seed, epoch) only: ``style="torch"``
    replays a seeded ``DataLoader(shuffle=True)`` (recorded runs keep their data order), ``"python"``
    is ``Random(seed + epoch).shuffle``."""

    def __init__(self, n: int, seed: int, style: str = "torch") -> None:
        if style not in {"torch", "python"}:
            raise ValueError(f"style must be torch or python, got {style!r}")
        self.n, self.seed, self.style, self.epoch = int(n), int(seed), style, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> list[int]:
        epoch = self.epoch if epoch is None else int(epoch)
        if self.style == "python":
            out = list(range(self.n))
            random.Random(self.seed + epoch).shuffle(out)
            return out
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch):  # replay the draws each earlier (complete) epoch made
            torch.empty((), dtype=torch.int64).random_(generator=gen)  # the loader's base seed
            torch.randperm(self.n, generator=gen)  # that epoch's order
            torch.randperm(self.n, generator=gen)  # RandomSampler's (empty) remainder permutation
        torch.empty((), dtype=torch.int64).random_(generator=gen)
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def __len__(self) -> int:
        return self.n


class RankShard(DistributedSampler):
    """One DDP rank's share of a :class:`SeededPermutation`'s epoch order, padded and strided as
    ``DistributedSampler`` does, so the per-rank order is a function of (seed, epoch, rank, world) and a
    resume replays it. Being a ``DistributedSampler``, Lightning sees the loader as sharded already."""

    def __init__(self, permutation: SeededPermutation, rank: int, world: int) -> None:
        super().__init__(range(len(permutation)), num_replicas=world, rank=rank, shuffle=False)
        self.permutation, self.seed = permutation, permutation.seed

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.permutation.set_epoch(epoch)

    def order(self, epoch: int | None = None, rank: int | None = None) -> list[int]:
        order = self.permutation.order(self.epoch if epoch is None else epoch)
        order += order[: self.total_size - len(order)]
        return order[self.rank if rank is None else rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())


class ResumableBatches(Sampler[list[int]]):
    """Batches of indices in ``sampler``'s order; ``pack`` turns an epoch's order into batches (default:
    ``batch_size`` chunks). The next iteration only skips ``start`` batches (set by the loader on resume)."""

    def __init__(self, sampler: SeededPermutation, batch_size: int, pack: Pack | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        self.sampler: SeededPermutation | RankShard = sampler
        self.batch_size, self.pack, self.start = int(batch_size), pack, 0

    def shard(self, rank: int, world: int) -> None:
        """Under DDP: from now on, batches of rank ``rank``'s share of every epoch (see RankShard)."""
        if world > 1:
            self.sampler = RankShard(self.sampler, rank, world)  # type: ignore[arg-type]

    @property
    def world(self) -> int:
        return getattr(self.sampler, "num_replicas", 1)

    def _chunks(self, order: list[int]) -> list[list[int]]:
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        if self.pack is None:
            return self._chunks(self.sampler.order(epoch))
        mine = self.pack(self.sampler.order(epoch))
        if isinstance(self.sampler, RankShard):  # a packing may give ranks unequal counts: DDP steps together
            return mine[: min(len(self.pack(self.sampler.order(epoch, r))) for r in range(self.world))]
        return mine

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start = self.start, 0
        yield from self.batches()[start:]

    def __len__(self) -> int:
        return (
            (len(self.sampler) + self.batch_size - 1) // self.batch_size
            if self.pack is None
            else len(self.batches())
        )


class ResumableDataLoader(DataLoader):
    """A DataLoader over :class:`ResumableBatches` whose position (and the collate function's state, e.g.
    the MLM mask RNG) goes into checkpoints. Its own generator keeps dropout's global RNG untouched."""

    def __init__(self, dataset: Any, batch_sampler: ResumableBatches, **kwargs: Any) -> None:
        kwargs.setdefault("generator", torch.Generator().manual_seed(batch_sampler.sampler.seed))
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self._epoch, self._done = 0, 0
        self._resume: tuple[int, int] | None = None

    @property  # type: ignore[override]
    def sampler(self) -> Any:
        """This rank's RankShard under DDP (Lightning then injects no sampler of its own), else torch's."""
        shard = getattr(getattr(self, "batch_sampler", None), "sampler", None)
        return shard if isinstance(shard, RankShard) else self._plain_sampler

    @sampler.setter
    def sampler(self, value: Any) -> None:  # DataLoader.__init__ sets it
        self._plain_sampler = value

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: the body runs at the first next(), after Lightning's set_epoch.
        batches: ResumableBatches = self.batch_sampler  # type: ignore[assignment]
        epoch, skip = batches.epoch, 0
        if self._resume is not None and self._resume[0] == epoch:
            skip = min(self._resume[1], len(batches))
        self._resume = None
        batches.start = skip
        self._epoch, self._done = epoch, skip
        for batch in super().__iter__():
            self._done += 1
            yield batch

    def _run_identity(self) -> dict[str, int]:
        b: ResumableBatches = self.batch_sampler  # type: ignore[assignment]
        identity = {"seed": b.sampler.seed, "n_items": len(b.sampler), "batch_size": b.batch_size}
        return identity | ({"world_size": b.world} if b.world > 1 else {})

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self._epoch, "batches_done": self._done, **self._run_identity()}
        collate_state = getattr(self.collate_fn, "state_dict", None)
        if collate_state is not None:  # a collator that draws random numbers (MLM masks) saves its RNG
            state["collate"] = collate_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        what = {"seed": "seed", "n_items": "training examples", "batch_size": "data.batch_size"}
        what["world_size"] = "DDP processes (trainer.devices x trainer.num_nodes)"
        for key, value in self._run_identity().items():
            if key in state and int(state[key]) != value:
                raise ValueError(
                    f"Cannot resume mid-epoch: the checkpoint's run had {what[key]} = {state[key]}, this run "
                    f"has {value}. Resume with the same seed, data and data.batch_size as the interrupted run."
                )
        self._resume = (int(state["epoch"]), int(state["batches_done"]))
        if "collate" in state and hasattr(self.collate_fn, "load_state_dict"):
            self.collate_fn.load_state_dict(state["collate"])


def saved_loader_states(checkpoint: dict[str, Any]) -> list[dict[str, int]]:
    """The training loaders' positions that Lightning stored in a checkpoint ([] if none)."""
    fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
    return list((fit_loop.get("state_dict") or {}).get("combined_loader") or [])


def restore_loader_positions(trainer: Any, states: list[dict[str, int]]) -> int:
    """Load saved positions into the trainer's training loaders; returns how many. Lightning drops them
    when ``configure_optimizers`` reads ``estimated_stepping_batches`` (Lightning-AI/pytorch-lightning#20550),
    so call this at ``on_train_start``; twice is harmless."""
    if not states:
        return 0
    stateful = training_loaders(trainer)
    if len(stateful) != len(states):
        raise ValueError(
            f"The checkpoint holds the position of {len(states)} training loader(s), this run has "
            f"{len(stateful)} resumable one(s): resume with the same data configuration."
        )
    for dl, state in zip(stateful, states, strict=True):
        dl.load_state_dict(state)
    return len(stateful)


def training_loaders(trainer: Any) -> list[ResumableDataLoader]:
    found: list[ResumableDataLoader] = []
    apply_to_collection(trainer.train_dataloader, ResumableDataLoader, found.append)
    return found


def resumable_loader(
    dataset: Any, n: int, batch_size: int, seed: int, *, style: str = "torch", rank: int = 0, world: int = 1,
    **kwargs: Any,
) -> ResumableDataLoader:  # fmt: skip
    """Shuffled training batches of ``dataset`` (``n`` items) that resume mid-epoch; under DDP, rank
    ``rank``'s share of ``world``."""
    batches = ResumableBatches(SeededPermutation(n, seed, style), batch_size)
    batches.shard(rank, world)
    return ResumableDataLoader(dataset, batches, **kwargs)


def gather_rank_states(state: dict[str, Any], world: int) -> list[dict[str, Any]]:
    """Every DDP rank's ``state`` (RNG, loader positions), in rank order: Lightning keeps rank 0's only."""
    import torch.distributed as dist

    out: list[Any] = [None] * world
    dist.all_gather_object(out, state)
    return out


def own_rank_state(ranks: list[dict[str, Any]] | None, rank: int, world: int) -> dict[str, Any]:
    if ranks is None or len(ranks) != world:
        written = 1 if ranks is None else len(ranks)
        raise ValueError(
            f"Cannot resume exactly: the checkpoint was written by {written} DDP process(es), this run has "
            f"{world}. Resume with the same trainer.devices x trainer.num_nodes as the interrupted run."
        )
    return ranks[rank]


def checkpoint_rng_state() -> dict[str, Any]:
    """Global RNG states (torch, CUDA, numpy, random) as tensors and plain Python values, so a
    checkpoint holding them still loads with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
