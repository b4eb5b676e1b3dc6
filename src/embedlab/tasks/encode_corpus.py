"""Encode a retrieval set's documents and queries into the embedding cache, in shards.

The config is evaluate.yaml plus configs/encode_corpus.yaml (usage there and in encode_corpus.py), so
the merged entries are the ones evaluate.py reads. Modes: ``shard=i`` encodes shard i; ``merge=true``
assembles the shards; under torchrun every rank encodes its shard and rank 0 merges; otherwise one
process encodes everything. Each process writes what it did to ``<run dir>/encode_corpus[.<role>].json``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.errors import ConfigError
from embedlab.tasks.model import build_model
from embedlab.tasks.shared import load_retrieval, make_encoder, retrieval_texts

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardSettings:
    """The keys configs/encode_corpus.yaml adds to evaluate.yaml (documented there)."""

    shard: int | None = None
    n_shards: int = 1
    merge: bool = False
    keep_shards: bool = False
    chunk_size: int = 4096
    device: str = "cpu"
    dist_timeout_min: float = 120.0


# not in the shard command quoted by error messages: they differ per process
_PER_PROCESS_KEYS = ("shard", "n_shards", "merge", "hydra.")


def _shard_command(overrides: list[str], n_shards: int) -> str:
    """The command that runs one shard, with ``{shard}`` left to fill in (str.format)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_PER_PROCESS_KEYS)]
    words = [shlex.quote(o).replace("{", "{{").replace("}", "}}") for o in kept]
    return " ".join(["python encode_corpus.py", *words, "shard={shard}", f"n_shards={n_shards}"])


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"device={device} is unknown. Choose cpu, cuda or auto.")
    return str(device)


def _check(specs: RunSpecs, cfg: ShardSettings) -> None:
    if specs.task != "retrieval":
        raise ConfigError(
            f"encode_corpus encodes retrieval corpora; data={specs.data_name} is a {specs.task} set. "
            f"Use a retrieval data config (scifact, beir, squad, ...)."
        )
    if not specs.run.embedding_cache:
        raise ConfigError("encode_corpus writes to the embedding cache: set embedding_cache=true.")
    n = int(cfg.n_shards)
    if n < 1:
        raise ConfigError(f"n_shards must be at least 1, got {n}.")
    if cfg.merge and cfg.shard is not None:
        raise ConfigError("Give either shard=<i> (encode one shard) or --merge (assemble them), not both.")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and (cfg.shard is not None or cfg.merge or n not in (1, world)):
        raise ConfigError(
            f"Under torchrun (WORLD_SIZE={world}) each rank is one shard and rank 0 merges: "
            f"drop shard=, n_shards= and --merge."
        )
    if world == 1 and n > 1 and cfg.shard is None and not cfg.merge:
        raise ConfigError(
            f"n_shards={n} without shard=<i>: run one process per shard (shard=0 .. {n - 1}, e.g. a SLURM "
            f"array --array=0-{n - 1}) and then --merge, or use torchrun, or n_shards=1 for one process."
        )


def encode_corpus(specs: RunSpecs, cfg: ShardSettings, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the mode ``cfg`` asks for (see the module docstring); returns what was done."""
    _check(specs, cfg)
    data = load_retrieval(specs)
    lists = retrieval_texts(data)  # what evaluate.py encodes: same lists, same cache keys
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_shards = world if world > 1 else int(cfg.n_shards)
    chunk = int(cfg.chunk_size)
    role = "all" if cfg.shard is None else f"shard{cfg.shard}"
    if cfg.merge or world > 1:
        role = "merge" if cfg.merge else f"rank{os.environ.get('RANK', '0')}"
    model, _ = build_model(specs)  # also to merge: the cache key is a hash of the weights
    model.to(_device(cfg.device))
    encoder = make_encoder(specs, model)  # batch size and backend: as evaluate.py encodes
    cache = encoder.cache
    run = _run_distributed if world > 1 else _run_local
    summary = {"data": specs.data_name, "revision": data.revision, "n_shards": n_shards, "role": role}
    summary |= {"model_key": encoder.key, "cache": str(cache.root)}
    summary["lists"] = run(cfg, encoder, lists, chunk, overrides or [])
    summary["n_texts_encoded"] = cache.stats.n_encoded
    out = Path(specs.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = "encode_corpus.json" if role == "all" else f"encode_corpus.{role}.json"
    (out / name).write_text(json.dumps(summary, indent=2))
    log.info("%s: %d texts encoded; wrote %s", role, cache.stats.n_encoded, out / name)
    return summary


def _run_local(cfg, encoder, lists, chunk: int, overrides: list[str]) -> dict[str, Any]:
    """One process: encode shard ``cfg.shard``, merge (``--merge``), or encode everything."""
    from embedlab.encode.cache import entry_key
    from embedlab.encode.sharded import encode_shard, merge_shards

    n_shards, done = int(cfg.n_shards), {}
    for what, texts in lists.items():
        if cfg.merge:
            how = {"keep_shards": bool(cfg.keep_shards), "how_to_run": _shard_command(overrides, n_shards)}
            res = merge_shards(encoder, texts, n_shards, chunk_size=chunk, what=what, **how)
            done[what] = {"key": res.key, "shape": res.shape, "already_merged": res.already_merged}
        elif cfg.shard is not None:
            sh = encode_shard(encoder, texts, int(cfg.shard), n_shards, chunk_size=chunk, what=what)
            done[what] = {k: getattr(sh, k) for k in ("key", "start", "stop", "n_encoded", "seconds")}
        else:
            emb, st = encoder.encode_cached(texts, chunk_size=chunk, what=what)
            key, n = entry_key(encoder.key, texts), st.n_encoded if st else 0
            done[what] = {"key": key, "shape": list(emb.shape), "n_encoded": n}
    return done


def _run_distributed(cfg, encoder, lists, chunk: int, overrides: list[str]) -> dict[str, Any]:
    """torchrun: this rank encodes its shard of every list; rank 0 merges each."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    from embedlab.encode.sharded import encode_distributed

    model = encoder.model
    on_gpu = str(next(model.parameters()).device).startswith("cuda")
    if on_gpu:
        torch.cuda.set_device(next(model.parameters()).device)
    dist.init_process_group(
        "nccl" if on_gpu else "gloo", timeout=timedelta(minutes=float(cfg.dist_timeout_min))
    )
    try:
        done: dict[str, Any] = {}
        for what, texts in lists.items():
            res = encode_distributed(encoder, texts, chunk_size=chunk, what=what)
            merged = None if res is None else {"key": res.key, "shape": res.shape}
            done[what] = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "merged": merged}
        return done
    finally:
        dist.destroy_process_group()
