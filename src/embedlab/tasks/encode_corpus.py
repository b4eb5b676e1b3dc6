"""Encode a retrieval set's documents and queries into the embedding cache, in shards: evaluate.yaml
plus configs/encode_corpus.yaml, so the entries are the ones evaluate.py reads. The modes are
:func:`embedlab.encode.sharded.encode_lists`'; each process records what it did in
``<run dir>/encode_corpus[.<role>].json``."""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.encode.sharded import ShardSettings, encode_lists
from embedlab.errors import ConfigError
from embedlab.tasks.model import build_model, load_retrieval, make_encoder, retrieval_texts

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs

__all__ = ["ShardSettings", "encode_corpus"]  # ShardSettings: jobs.py builds it from the config
log = logging.getLogger(__name__)
_PER_PROCESS_KEYS = ("shard", "n_shards", "merge", "hydra.")  # left out of the quoted shard command


def encode_corpus(specs: RunSpecs, cfg: ShardSettings, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the mode ``cfg`` asks for; returns (and writes) what was done."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if specs.task != "retrieval":
        raise ConfigError(
            f"encode_corpus encodes retrieval corpora; data={specs.data_name} is a {specs.task} set. "
            f"Use a retrieval data config (scifact, beir, squad, ...)."
        )
    if not specs.run.embedding_cache:
        raise ConfigError("encode_corpus writes to the embedding cache: set embedding_cache=true.")
    cfg.check(world)
    data = load_retrieval(specs)
    role = "merge" if cfg.merge else f"rank{os.environ.get('RANK', '0')}" if world > 1 else "all"
    role = f"shard{cfg.shard}" if cfg.shard is not None else role
    model, _ = build_model(specs)  # also to merge: the cache key is a hash of the weights
    encoder = make_encoder(specs, model)  # device (encode.device), batch size and backend: as evaluate.py
    n_shards = world if world > 1 else int(cfg.n_shards)
    summary = {"data": specs.data_name, "revision": data.revision, "n_shards": n_shards, "role": role}
    summary |= {"model_key": encoder.key, "cache": str(encoder.cache.root), "device": encoder.describe()}
    lists = retrieval_texts(data)  # what evaluate.py encodes: same lists, same cache keys
    summary["lists"] = encode_lists(encoder, lists, cfg, world, _shard_command(overrides or [], n_shards))
    summary["n_texts_encoded"] = encoder.cache.stats.n_encoded
    out = Path(specs.run.output_dir) / (
        "encode_corpus.json" if role == "all" else f"encode_corpus.{role}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    log.info("%s: %d texts encoded; wrote %s", role, encoder.cache.stats.n_encoded, out)
    return summary


def _shard_command(overrides: list[str], n_shards: int) -> str:
    """The command that runs one shard, with ``{shard}`` left to fill in (str.format)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_PER_PROCESS_KEYS)]
    words = [shlex.quote(o).replace("{", "{{").replace("}", "}}") for o in kept]
    return " ".join(["python encode_corpus.py", *words, "shard={shard}", f"n_shards={n_shards}"])
