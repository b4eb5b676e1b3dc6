"""Encode a corpus in shards (SLURM array tasks, DDP ranks), then merge them into the one cache entry
``Encoder.encode_cached`` reads. A shard is a run of whole ``CHUNK_SIZE`` chunks, so merges are
bit-identical to a one-process encode. Not Lightning's ``predict``: its sampler interleaves and pads.
:func:`encode_lists` runs the mode :class:`ShardSettings` (``configs/encode_corpus.yaml``) asks for."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any, NoReturn

import numpy as np

from embedlab.encode.cache import CHUNK_SIZE, EmbeddingCache, cache_key, entry_key, texts_key
from embedlab.encode.encoder import Encoder
from embedlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)


class ShardsMissingError(DataError):
    """``merge_shards`` was asked to merge before every shard was in the cache."""

    def __init__(self, message: str, missing: list[int]) -> None:
        super().__init__(message)
        self.missing = missing


def shard_bounds(n_texts: int, shard: int, n_shards: int, chunk_size: int = CHUNK_SIZE) -> tuple[int, int]:
    """[start, stop) of a shard: whole chunks of ``chunk_size`` texts, dealt as ``numpy.array_split``."""
    for name, value in (("chunk_size", chunk_size), ("n_shards", n_shards)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}.")
    if not 0 <= shard < n_shards:
        raise ConfigError(
            f"shard={shard} is outside 0..{n_shards - 1} (n_shards={n_shards}). Shards count from 0: "
            f"a SLURM array for n_shards={n_shards} is --array=0-{n_shards - 1}."
        )
    n_chunks = -(-n_texts // chunk_size)
    size, extra = divmod(n_chunks, n_shards)
    first = shard * size + min(shard, extra)  # in chunks
    last = first + size + (1 if shard < extra else 0)
    return min(first * chunk_size, n_texts), min(last * chunk_size, n_texts)


def shard_keys(
    encoder: Encoder, texts: Sequence[str], n_shards: int, chunk_size: int = CHUNK_SIZE
) -> list[str]:
    """Cache key of each shard: the encoder, the *whole* text list, and which slice of it."""
    tk, chunk = texts_key(texts), f"chunk{chunk_size}"
    return [cache_key(encoder.key, tk, f"shard{i}of{n_shards}", chunk) for i in range(n_shards)]


@dataclass(frozen=True)
class ShardResult:
    shard: int
    n_shards: int
    start: int
    stop: int
    key: str
    n_encoded: int  # texts run through the model now (0: already cached, merged, or empty)
    seconds: float


@dataclass(frozen=True)
class MergeResult:
    key: str  # the Encoder.encode_cached key of the whole list
    shape: tuple[int, int] | None  # None when it was merged before (not read again)
    n_shards: int
    already_merged: bool  # the merged entry existed; nothing was read or written


def _check(texts: Sequence[str], n_shards: int, cache: EmbeddingCache) -> None:
    if not texts:
        raise DataError("Nothing to encode: the text list is empty.")
    shard_bounds(len(texts), 0, n_shards)  # checks n_shards
    if cache.root is None:
        raise ConfigError(
            "Sharded encoding stores its shards in the embedding cache, which is disabled. "
            "Fix: embedding_cache=true, with paths.cache_dir (or EMBEDLAB_CACHE) on a filesystem "
            "that every shard's process can read and write."
        )


EMPTY_SHARD = (
    "Shard %d/%d of the %s is empty: %d texts make %d chunk(s) of %d, and shards hold whole chunks "
    "(so that merged embeddings equal a single-process encode). Nothing to do."
)


def encode_shard(
    encoder: Encoder,
    texts: Sequence[str],
    shard: int,
    n_shards: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    what="texts",
) -> ShardResult:
    """Encode slice ``shard`` of the whole list ``texts`` (the same for every shard) into the cache;
    a finished or merged shard encodes nothing (requeues are safe)."""
    cache = encoder.cache
    _check(texts, n_shards, cache)
    start, stop = shard_bounds(len(texts), shard, n_shards, chunk_size)
    key = shard_keys(encoder, texts, n_shards, chunk_size)[shard]
    done = ShardResult(shard, n_shards, start, stop, key, n_encoded=0, seconds=0.0)
    if start == stop:
        log.warning(EMPTY_SHARD, shard, n_shards, what, len(texts), -(-len(texts) // chunk_size), chunk_size)
        return done
    if cache.has(key) or cache.has(entry_key(encoder.key, texts)):
        log.info("Shard %d/%d of the %s is already in the cache (%s)", shard, n_shards, what, key)
        return done
    t0, part = time.perf_counter(), f"{what} (shard {shard}/{n_shards})"
    uncached = encoder.replace(cache=EmbeddingCache(None))  # the shard is stored under its own key
    emb, _ = uncached.encode_cached(texts[start:stop], chunk_size=chunk_size, what=part)
    cache.stats.n_encoded += stop - start
    info = dict(what=what, shard=shard, n_shards=n_shards, chunk_size=chunk_size, start=start, stop=stop)
    cache.put(key, emb, info | dict(n_total=len(texts), texts_key=texts_key(texts), model_key=encoder.key))
    done = replace(done, n_encoded=stop - start, seconds=time.perf_counter() - t0)
    log.info("Encoded %s: texts [%d, %d) in %.1f s -> %s", part, start, stop, done.seconds, key)
    return done


def merge_shards(
    encoder: Encoder,
    texts: Sequence[str],
    n_shards: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    what: str = "texts",
    keep_shards: bool = False,
    how_to_run: str | None = None,
) -> MergeResult:
    """Every shard (checksum, rows, width checked) into one (N, D) entry under the ``encode_cached`` key,
    then the shards deleted unless ``keep_shards``. ``how_to_run``: a command with ``{shard}``, quoted
    for the shards that are missing."""
    cache, full_key = encoder.cache, entry_key(encoder.key, texts)
    _check(texts, n_shards, cache)
    keys = shard_keys(encoder, texts, n_shards, chunk_size)
    merged, shape = cache.has(full_key), None
    if merged:
        log.info("The %s embeddings are already merged (%s)", what, full_key)
    else:
        bounds = [shard_bounds(len(texts), i, n_shards, chunk_size) for i in range(n_shards)]
        how = how_to_run or f"encode_shard(encoder, texts, shard={{shard}}, n_shards={n_shards}, ...)"
        out = _assemble(cache, keys, bounds, what, how)
        cache.put(full_key, out, {"what": what, "n": len(texts), "merged_from_shards": n_shards})
        shape = (int(out.shape[0]), int(out.shape[1]))
        log.info("Merged %d shards of the %s into %s %s", n_shards, what, full_key, shape)
    for k in keys if not keep_shards else ():
        cache.remove(k)
    return MergeResult(full_key, shape, n_shards, merged)


def _assemble(
    cache: EmbeddingCache, keys: list[str], bounds: list[tuple[int, int]], what: str, how_to_run: str
) -> np.ndarray:
    """The (N, D) array of every shard's rows; raises naming the shards to (re)run."""
    n_shards, n_texts = len(keys), bounds[-1][1]

    def fail(missing: list[int], state: str = "are missing") -> NoReturn:
        runs = "\n".join(f"  {how_to_run.format(shard=i)}" for i in missing[:8])
        more = f"\n  ... and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ShardsMissingError(
            f"Cannot merge the {what} ({n_texts} texts, n_shards={n_shards}): shard(s) {missing} {state} "
            f"in {cache.root}. Every shard must finish with the same model, data, encode settings and "
            f"n_shards, writing to this cache folder. Run the missing one(s), then merge again:\n{runs}{more}",
            missing,
        )

    if missing := [i for i, (a, b) in enumerate(bounds) if a < b and not cache.has(keys[i])]:
        fail(missing)
    out: np.ndarray | None = None
    for i, (key, (start, stop)) in enumerate(zip(keys, bounds, strict=True)):
        if start == stop:
            continue
        arr = cache.get(key)  # verifies the checksum; removes the entry and returns None when corrupt
        if arr is None:
            fail([i], "is corrupt (checksum mismatch; removed)")
        if arr.ndim != 2 or arr.shape[0] != stop - start or arr.dtype != np.float32:
            raise DataError(
                f"Shard {i}/{n_shards} of the {what} holds an array of shape {arr.shape} ({arr.dtype}); "
                f"texts [{start}, {stop}) need ({stop - start}, D) float32. Fix: delete its entry "
                f"({key}) and run that shard again."
            )
        if out is None:  # preallocated: peak memory is the merged array plus one shard
            out = np.empty((n_texts, arr.shape[1]), np.float32)
        elif arr.shape[1] != out.shape[1]:
            raise DataError(
                f"Shard {i}/{n_shards} of the {what} has {arr.shape[1]} dimensions, earlier shards "
                f"{out.shape[1]}: the shards came from different encoders. Delete the shard entries "
                f"and run every shard with the same model and config."
            )
        out[start:stop] = arr
    assert out is not None  # _check guarantees a non-empty shard
    return out


def distributed_context(trainer: Any = None) -> tuple[int, int, Callable[[], None]]:
    """(rank, world size, barrier) from a trainer, torch.distributed, or neither; refuses WORLD_SIZE > 1
    without a process group rather than let every rank encode everything."""
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size), trainer.strategy.barrier
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.barrier
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but no torch.distributed process group exists. "
            "Fix: call torch.distributed.init_process_group() first (python encode_corpus.py "
            "does), or pass the Lightning trainer."
        )
    return 0, 1, lambda: None


def encode_distributed(
    encoder: Encoder,
    texts: Sequence[str],
    *,
    trainer: Any = None,
    chunk_size: int = CHUNK_SIZE,
    what: str = "texts",
) -> MergeResult | None:
    """Each rank encodes its shard, rank 0 merges (its result; None elsewhere). The cache folder must
    be shared by all ranks, and the process group's timeout longer than one shard's encode."""
    rank, world, barrier = distributed_context(trainer)
    encode_shard(encoder, texts, rank, world, chunk_size=chunk_size, what=what)
    barrier()  # every shard is written
    result = None
    try:
        if rank == 0:
            result = merge_shards(encoder, texts, world, chunk_size=chunk_size, what=what)
    finally:
        barrier()  # also when the merge failed: the other ranks then fail below instead of hanging
    if not encoder.cache.has(entry_key(encoder.key, texts)):
        raise DataError(
            f"Rank {rank}: the merged {what} embeddings are not in {encoder.cache.root} after the merge; "
            f"rank 0's log says why."
        )
    return result


@dataclass(frozen=True)
class ShardSettings:
    """What one ``encode_corpus.py`` process does (the keys configs/encode_corpus.yaml documents)."""

    shard: int | None = None
    n_shards: int = 1
    merge: bool = False
    keep_shards: bool = False
    chunk_size: int = CHUNK_SIZE
    dist_timeout_min: float = 120.0

    def check(self, world: int) -> None:
        """Refuse combinations that would encode nothing, everything twice, or shards that never merge."""
        n = int(self.n_shards)
        shard_bounds(0, 0, n)  # checks n_shards
        if self.merge and self.shard is not None:
            raise ConfigError(
                "Give either shard=<i> (encode one shard) or --merge (assemble them), not both."
            )
        if world > 1 and (self.shard is not None or self.merge or n not in (1, world)):
            raise ConfigError(
                f"Under torchrun (WORLD_SIZE={world}) each rank is one shard and rank 0 merges: "
                f"drop shard=, n_shards= and --merge."
            )
        if world == 1 and n > 1 and self.shard is None and not self.merge:
            raise ConfigError(
                f"n_shards={n} without shard=<i>: run one process per shard (shard=0 .. {n - 1}, e.g. a SLURM "
                f"array --array=0-{n - 1}) and then --merge, or use torchrun, or n_shards=1 for one process."
            )


def encode_lists(
    encoder: Encoder, lists: dict[str, list[str]], cfg: ShardSettings, world: int, how_to_run: str
) -> dict[str, dict[str, Any]]:
    """For each named list: this rank's shard then rank 0's merge (``world`` > 1), the merge, one
    shard, or the whole list; what was done, per list. ``how_to_run``: see :func:`merge_shards`."""
    import torch
    import torch.distributed as dist

    n, chunk, done = int(cfg.n_shards), int(cfg.chunk_size), {}
    if world > 1:  # torchrun's environment; nccl on GPUs, else gloo
        device = next(encoder.model.parameters()).device
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = timedelta(minutes=float(cfg.dist_timeout_min))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        for what, texts in lists.items():
            if world > 1:
                res = encode_distributed(encoder, texts, chunk_size=chunk, what=what)
                done[what] = {"rank": dist.get_rank(), "world_size": world, "merged": res and asdict(res)}
            elif cfg.merge:
                how = {"keep_shards": bool(cfg.keep_shards), "how_to_run": how_to_run}
                done[what] = asdict(merge_shards(encoder, texts, n, chunk_size=chunk, what=what, **how))
            elif cfg.shard is not None:
                done[what] = asdict(
                    encode_shard(encoder, texts, int(cfg.shard), n, chunk_size=chunk, what=what)
                )
            else:
                emb, st = encoder.encode_cached(texts, chunk_size=chunk, what=what)
                key, n_encoded = entry_key(encoder.key, texts), st.n_encoded if st else 0
                done[what] = {"key": key, "shape": list(emb.shape), "n_encoded": n_encoded}
    finally:
        if world > 1:
            dist.destroy_process_group()
    return done
