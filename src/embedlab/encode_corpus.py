"""Encode a retrieval set's documents and queries into the embedding cache, in shards.

    python -m embedlab.encode_corpus data=scifact model=minilm shard=$SLURM_ARRAY_TASK_ID n_shards=4
    python -m embedlab.encode_corpus data=scifact model=minilm n_shards=4 --merge
    torchrun --nproc-per-node 4 -m embedlab.encode_corpus data=scifact model=minilm

The config is ``evaluate.yaml`` plus the keys in ``configs/encode_corpus.yaml``, so the
encoder, pooling, encode backend, batch size and data are the ones ``evaluate.py`` uses,
and the merged entries are the ones it reads (``n_texts_encoded`` = 0). Modes: ``shard=i``
encodes shard i and exits; ``--merge`` (``merge=true``) assembles the shards; under
torchrun (``WORLD_SIZE`` > 1) every rank encodes its shard and rank 0 merges; with
neither, one process encodes everything (``n_shards=1``). Each process writes what it did
to ``<run dir>/encode_corpus[.<role>].json``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from embedlab.errors import ConfigError

if TYPE_CHECKING:
    from embedlab.data.retrieval import RetrievalSet

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# not in the shard command quoted by error messages: they differ per process
_PER_PROCESS_KEYS = ("shard", "n_shards", "merge", "hydra.")


def retrieval_texts(data: RetrievalSet) -> dict[str, list[str]]:
    """The text lists ``evaluate_retrieval`` encodes, in its order (same lists, same cache keys)."""
    return {
        "documents": [data.corpus[d] for d in data.doc_ids],
        "queries": [data.queries[q] for q in data.query_ids],
    }


def _shard_command(overrides: list[str], n_shards: int) -> str:
    """The command that runs one shard, with ``{shard}`` left to fill in (str.format)."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(_PER_PROCESS_KEYS)]
    words = [
        "python -m embedlab.encode_corpus",
        *(shlex.quote(o).replace("{", "{{").replace("}", "}}") for o in kept),
    ]
    return " ".join([*words, "shard={shard}", f"n_shards={n_shards}"])


def _device(cfg: DictConfig) -> str:
    import torch

    if cfg.device == "auto":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if cfg.device not in ("cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError(f"device={cfg.device} is unknown. Choose cpu, cuda or auto.")
    return str(cfg.device)


def _check(cfg: DictConfig) -> None:
    if cfg.data.task != "retrieval":
        raise ConfigError(
            f"encode_corpus encodes retrieval corpora; data={cfg.data.name} is a {cfg.data.task} set. "
            f"Use a retrieval data config (scifact, beir, squad, ...)."
        )
    if not cfg.embedding_cache:
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


def encode_corpus(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run the mode ``cfg`` asks for (see the module docstring); returns what was done."""
    from embedlab.data.retrieval import load_retrieval_set
    from embedlab.run import build_model, check_config, encoder_from_cfg

    _check(cfg)
    check_config(cfg)
    d = cfg.data
    data = load_retrieval_set(d.format, d.root, split=d.split, name=d.name)
    lists = retrieval_texts(data)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_shards = world if world > 1 else int(cfg.n_shards)
    chunk = int(cfg.chunk_size)
    summary: dict[str, Any] = {"data": d.name, "revision": data.revision, "n_shards": n_shards, "lists": {}}
    if cfg.merge:
        role = "merge"
    elif world > 1:
        role = f"rank{os.environ.get('RANK', '0')}"
    else:
        role = f"shard{cfg.shard}" if cfg.shard is not None else "all"
    model, _ = build_model(cfg)  # also to merge: the cache key is a hash of the weights
    model.to(_device(cfg))
    encoder = encoder_from_cfg(cfg, model)  # batch size and backend: as evaluate.py encodes
    cache = encoder.cache
    summary.update(role=role, model_key=encoder.key, cache=str(cache.root))
    run = _run_distributed if world > 1 else _run_local
    summary["lists"] = run(cfg, encoder, lists, chunk, overrides or [])
    summary["n_texts_encoded"] = cache.stats.n_encoded
    out = Path(cfg.paths.output_dir)
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
            res = merge_shards(
                encoder, texts, n_shards, chunk_size=chunk, what=what, keep_shards=bool(cfg.keep_shards),
                how_to_run=_shard_command(overrides, n_shards),
            )  # fmt: skip
            done[what] = {"key": res.key, "shape": res.shape, "already_merged": res.already_merged}
        elif cfg.shard is not None:
            sh = encode_shard(encoder, texts, int(cfg.shard), n_shards, chunk_size=chunk, what=what)
            done[what] = {"key": sh.key, "start": sh.start, "stop": sh.stop, "n_encoded": sh.n_encoded,
                          "seconds": sh.seconds}  # fmt: skip
        else:
            emb, st = encoder.encode_cached(texts, chunk_size=chunk, what=what)
            done[what] = {"key": entry_key(encoder.key, texts), "shape": list(emb.shape),
                          "n_encoded": st.n_encoded if st else 0}  # fmt: skip
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
            done[what] = {"rank": dist.get_rank(), "world_size": dist.get_world_size(),
                          "merged": None if res is None else {"key": res.key, "shape": res.shape}}  # fmt: skip
        return done
    finally:
        dist.destroy_process_group()


@hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name="encode_corpus")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    encode_corpus(cfg, list(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    # `--merge` reads better in a job script than merge=true; Hydra only takes key=value
    sys.argv = ["merge=true" if a == "--merge" else a for a in sys.argv]
    main()
