"""Encode a corpus too large for one machine in shards, then merge them into one cache entry.

Shard i of n is a contiguous run of whole chunks (``CHUNK_SIZE`` texts, the unit
``Encoder.encode_cached`` encodes), dealt as ``numpy.array_split`` deals items. Each process
(a DDP rank, a SLURM array task, any job that sees the cache folder) runs
:func:`encode_shard`; :func:`merge_shards` checks every shard (checksum, rows, width) and
stores the (N, D) array under the key ``encode_cached`` uses for the whole list, so every
later evaluation reads it and encodes nothing. Under torch.distributed,
:func:`encode_distributed` does both with barriers; SLURM arrays run ``python -m
embedlab.encode_corpus ... shard=<i> n_shards=<n>`` per task, then ``--merge``.

Why whole chunks: a text's embedding depends on its batch (padding and batch shape change
the summation order; bf16 moves values by up to ~1e-3 on MiniLM, fp32 ~1e-7), and encoders
batch within one chunk, so merged shards are bit-identical to a one-process encode on the
same CPU and thread count (SciFact, 2 shards: nDCG@10 0.6442 both; slurm/README.md, 7.).
The price: a corpus of fewer chunks than shards leaves some shards empty. Why not
Lightning's ``predict``: its DistributedSampler interleaves ranks and pads the last batch
with repeats, which a merge would have to undo. Every shard must use the same encoder and
backend: the encoder key names both and is part of every shard key.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    """[start, stop) of shard ``shard`` of ``n_shards``: contiguous runs of whole chunks of
    ``chunk_size`` texts (the last chunk may be short), dealt as ``numpy.array_split`` does."""
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1, got {chunk_size}.")
    if n_shards < 1:
        raise ConfigError(f"n_shards must be at least 1, got {n_shards}.")
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
    all_key = texts_key(texts)
    return [
        cache_key(encoder.key, all_key, f"shard{i}of{n_shards}", f"chunk{chunk_size}")
        for i in range(n_shards)
    ]


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
    if n_shards < 1:
        raise ConfigError(f"n_shards must be at least 1, got {n_shards}.")
    if cache.root is None:
        raise ConfigError(
            "Sharded encoding stores its shards in the embedding cache, which is disabled. "
            "Fix: embedding_cache=true, with paths.cache_dir (or EMBEDLAB_CACHE) on a filesystem "
            "that every shard's process can read and write."
        )


def encode_shard(
    encoder: Encoder,
    texts: Sequence[str],
    shard: int,
    n_shards: int,
    *,
    chunk_size: int = CHUNK_SIZE,
    what: str = "texts",
) -> ShardResult:
    """Encode slice ``shard`` of ``n_shards`` of ``texts`` and store it in ``encoder.cache``.

    ``texts`` is the whole list (every shard must see the same one, in the same order).
    Re-running a finished shard, or any shard after the merge, encodes nothing, so a
    requeued array task is harmless. An empty slice (fewer chunks than shards) stores nothing.
    """
    cache = encoder.cache
    _check(texts, n_shards, cache)
    start, stop = shard_bounds(len(texts), shard, n_shards, chunk_size)
    key = shard_keys(encoder, texts, n_shards, chunk_size)[shard]
    done = ShardResult(shard, n_shards, start, stop, key, n_encoded=0, seconds=0.0)
    if start == stop:
        log.warning(
            "Shard %d/%d of the %s is empty: %d texts make %d chunk(s) of %d, and shards hold whole "
            "chunks (so that merged embeddings equal a single-process encode). Nothing to do.",
            shard, n_shards, what, len(texts), -(-len(texts) // chunk_size), chunk_size,
        )  # fmt: skip
        return done
    if cache.has(key) or cache.has(entry_key(encoder.key, texts)):
        log.info("Shard %d/%d of the %s is already in the cache (%s)", shard, n_shards, what, key)
        return done
    t0 = time.perf_counter()
    emb, _ = encoder.encode_chunked(
        texts[start:stop], chunk_size=chunk_size, what=f"{what} (shard {shard}/{n_shards})"
    )
    cache.stats.n_encoded += stop - start
    info = {"what": what, "shard": shard, "n_shards": n_shards, "chunk_size": chunk_size, "start": start,
            "stop": stop, "n_total": len(texts), "texts_key": texts_key(texts), "model_key": encoder.key}  # fmt: skip
    cache.put(key, emb, info)
    done = replace(done, n_encoded=stop - start, seconds=time.perf_counter() - t0)
    log.info("Encoded %s shard %d/%d: texts [%d, %d) in %.1f s -> %s", what, shard, n_shards, start, stop,
             done.seconds, key)  # fmt: skip
    return done


def missing_shards(
    encoder: Encoder, texts: Sequence[str], n_shards: int, chunk_size: int = CHUNK_SIZE
) -> list[int]:
    """Non-empty shards of ``texts`` that have no complete entry in ``encoder.cache``."""
    keys = shard_keys(encoder, texts, n_shards, chunk_size)
    bounds = [shard_bounds(len(texts), i, n_shards, chunk_size) for i in range(n_shards)]
    return [i for i, (a, b) in enumerate(bounds) if a < b and not encoder.cache.has(keys[i])]


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
    """Assemble every shard of ``texts`` into one (N, D) entry under the ``encode_cached`` key.

    Each shard's checksum is verified (a corrupt one is removed and reported missing) and it
    must hold exactly its slice's rows, as wide as the others. ``how_to_run``: a command with
    ``{shard}`` in it, quoted for missing shards. ``keep_shards=False``: shard entries are
    deleted once merged. Runs no model, only needs ``encoder.key``.
    """
    cache = encoder.cache
    _check(texts, n_shards, cache)
    full_key = entry_key(encoder.key, texts)
    keys = shard_keys(encoder, texts, n_shards, chunk_size)
    if cache.has(full_key):
        log.info("The %s embeddings are already merged (%s)", what, full_key)
        for k in keys if not keep_shards else ():
            cache.remove(k)
        return MergeResult(full_key, None, n_shards, True)

    missing = missing_shards(encoder, texts, n_shards, chunk_size)
    _raise_if_missing(missing, n_shards, what, len(texts), cache, how_to_run)
    out: np.ndarray | None = None
    for i, key in enumerate(keys):
        start, stop = shard_bounds(len(texts), i, n_shards, chunk_size)
        if start == stop:
            continue
        arr = cache.get(key)  # verifies the checksum; removes the entry and returns None when corrupt
        if arr is None:
            _raise_if_missing([i], n_shards, what, len(texts), cache, how_to_run, corrupt=True)
        assert arr is not None
        if arr.ndim != 2 or arr.shape[0] != stop - start or arr.dtype != np.float32:
            raise DataError(
                f"Shard {i}/{n_shards} of the {what} holds an array of shape {arr.shape} ({arr.dtype}); "
                f"texts [{start}, {stop}) need ({stop - start}, D) float32. Fix: delete its entry "
                f"({key}) and run that shard again."
            )
        if out is None:  # preallocated: peak memory is the merged array plus one shard
            out = np.empty((len(texts), arr.shape[1]), np.float32)
        elif arr.shape[1] != out.shape[1]:
            raise DataError(
                f"Shard {i}/{n_shards} of the {what} has {arr.shape[1]} dimensions, earlier shards "
                f"{out.shape[1]}: the shards came from different encoders. Delete the shard entries "
                f"and run every shard with the same model and config."
            )
        out[start:stop] = arr
    assert out is not None  # _check guarantees a non-empty shard
    cache.put(full_key, out, {"what": what, "n": len(texts), "merged_from_shards": n_shards})
    for k in keys if not keep_shards else ():
        cache.remove(k)
    log.info("Merged %d shards of the %s into %s %s", n_shards, what, full_key, out.shape)
    return MergeResult(full_key, (int(out.shape[0]), int(out.shape[1])), n_shards, False)


def _raise_if_missing(
    missing: list[int], n_shards: int, what: str, n_texts: int, cache: EmbeddingCache,
    how_to_run: str | None, *, corrupt: bool = False,
) -> None:  # fmt: skip
    if not missing:
        return
    how = how_to_run or "encode_shard(encoder, texts, shard={shard}, n_shards=" + str(n_shards) + ", ...)"
    runs = "\n".join(f"  {how.format(shard=i)}" for i in missing[:8])
    more = f"\n  ... and {len(missing) - 8} more" if len(missing) > 8 else ""
    state = "is corrupt (checksum mismatch; removed)" if corrupt else "are missing"
    raise ShardsMissingError(
        f"Cannot merge the {what} ({n_texts} texts, n_shards={n_shards}): shard(s) {missing} {state} "
        f"in {cache.root}. Every shard must finish with the same model, data, encode settings and "
        f"n_shards, writing to this cache folder. Run the missing one(s), then merge again:\n{runs}{more}",
        missing,
    )


# --- torch.distributed / Lightning ----------------------------------------------------


def distributed_context(trainer: Any = None) -> tuple[int, int, Callable[[], None]]:
    """(rank, world size, barrier) from a Lightning trainer, torch.distributed, or neither.

    With ``WORLD_SIZE`` > 1 in the environment (torchrun, Lightning's DDP launcher) but no
    process group yet, refuses rather than let every rank encode everything.
    """
    if trainer is not None:
        return int(trainer.global_rank), int(trainer.world_size), trainer.strategy.barrier
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dist.barrier
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but no torch.distributed process group exists. "
            "Fix: call torch.distributed.init_process_group() first (python -m embedlab.encode_corpus "
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
    """Each rank encodes its shard, rank 0 merges (its result; None elsewhere); all return once
    the merged entry exists. The cache folder must be shared by all ranks, and the process
    group's timeout (the barriers' wait) longer than one shard's encode."""
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
