"""Encode a retrieval set's documents and queries into the embedding cache, in shards.

Config: evaluate.yaml plus configs/encode_corpus.yaml, so the entries are the ones evaluate.py reads.
``shard=i`` encodes shard i; ``merge=true`` assembles the shards; under torchrun every rank encodes its
shard and rank 0 merges; otherwise one process encodes everything. Each process records what it did
in ``<run dir>/encode_corpus[.<role>].json``."""

from __future__ import annotations

import json
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.encode.cache import entry_key
from embedlab.encode.encoder import Encoder
from embedlab.encode.sharded import encode_distributed, encode_shard, merge_shards
from embedlab.errors import ConfigError
from embedlab.tasks.model import build_model, load_retrieval, make_encoder, retrieval_texts

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

log = logging.getLogger(__name__)
_PER_PROCESS_KEYS = ("shard", "n_shards", "merge", "hydra.")  # left out of the quoted shard command


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


def _check(specs: RunSpecs, cfg: ShardSettings, world: int) -> None:
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
    if cfg.device not in ("cpu", "cuda", "auto") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError(f"device={cfg.device} is unknown. Choose cpu, cuda or auto.")


def encode_corpus(specs: RunSpecs, cfg: ShardSettings, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the mode ``cfg`` asks for (see the module docstring); returns what was done."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    _check(specs, cfg, world)
    data = load_retrieval(specs)
    role = "all" if cfg.shard is None else f"shard{cfg.shard}"
    if cfg.merge or world > 1:
        role = "merge" if cfg.merge else f"rank{os.environ.get('RANK', '0')}"
    model, _ = build_model(specs)  # also to merge: the cache key is a hash of the weights
    device = cfg.device
    if device == "auto":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    model.to(device)
    encoder = make_encoder(specs, model)  # batch size and backend: as evaluate.py encodes
    n_shards = world if world > 1 else int(cfg.n_shards)
    summary = {"data": specs.data_name, "revision": data.revision, "n_shards": n_shards, "role": role}
    summary |= {"model_key": encoder.key, "cache": str(encoder.cache.root)}
    lists = retrieval_texts(data)  # what evaluate.py encodes: same lists, same cache keys
    run = _run_distributed if world > 1 else _run_local
    summary["lists"] = run(cfg, encoder, lists, _shard_command(overrides or [], n_shards))
    summary["n_texts_encoded"] = encoder.cache.stats.n_encoded
    out = Path(specs.run.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = "encode_corpus.json" if role == "all" else f"encode_corpus.{role}.json"
    (out / name).write_text(json.dumps(summary, indent=2))
    log.info("%s: %d texts encoded; wrote %s", role, encoder.cache.stats.n_encoded, out / name)
    return summary


def _shard_command(overrides: list[str], n_shards: int) -> str:
    """The command that runs one shard, with ``{shard}`` left to fill in (str.format)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_PER_PROCESS_KEYS)]
    words = [shlex.quote(o).replace("{", "{{").replace("}", "}}") for o in kept]
    return " ".join(["python encode_corpus.py", *words, "shard={shard}", f"n_shards={n_shards}"])


def _run_local(cfg: ShardSettings, encoder: Encoder, lists: dict, how_to_run: str) -> dict[str, Any]:
    """One process: encode shard ``cfg.shard``, merge (``--merge``), or encode everything."""
    n, chunk, done = int(cfg.n_shards), int(cfg.chunk_size), {}
    for what, texts in lists.items():
        if cfg.merge:
            how = {"keep_shards": bool(cfg.keep_shards), "how_to_run": how_to_run}
            res = merge_shards(encoder, texts, n, chunk_size=chunk, what=what, **how)
            done[what] = {"key": res.key, "shape": res.shape, "already_merged": res.already_merged}
        elif cfg.shard is not None:
            sh = encode_shard(encoder, texts, int(cfg.shard), n, chunk_size=chunk, what=what)
            done[what] = {k: getattr(sh, k) for k in ("key", "start", "stop", "n_encoded", "seconds")}
        else:
            emb, st = encoder.encode_cached(texts, chunk_size=chunk, what=what)
            done[what] = {"key": entry_key(encoder.key, texts), "shape": list(emb.shape)}
            done[what]["n_encoded"] = st.n_encoded if st else 0
    return done


def _run_distributed(cfg: ShardSettings, encoder: Encoder, lists: dict, how_to_run: str) -> dict[str, Any]:
    """torchrun: this rank encodes its shard of every list; rank 0 merges each."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    device = next(encoder.model.parameters()).device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(minutes=float(cfg.dist_timeout_min))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        done: dict[str, Any] = {}
        for what, texts in lists.items():
            res = encode_distributed(encoder, texts, chunk_size=int(cfg.chunk_size), what=what)
            merged = None if res is None else {"key": res.key, "shape": res.shape}
            done[what] = {"rank": dist.get_rank(), "world_size": dist.get_world_size(), "merged": merged}
        return done
    finally:
        dist.destroy_process_group()
