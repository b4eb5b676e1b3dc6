"""Sharded corpus encoding: shards made by separate processes merge into the cache entry a
single-process evaluation would have written, bit for bit, and evaluation then encodes nothing.

Why bit for bit and not just allclose: a text's embedding depends on the other texts of its
batch (padding, batch shape, bf16 rounding), and Encoder.encode_cached batches within chunks of
CHUNK_SIZE texts. Shards hold whole chunks, so every text meets exactly the batch it meets
in one process. The two-process tests use a corpus of more than one chunk for that reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

WORDS = (
    "cat dog paris tower sunlight plant market stock river bridge music piano protein cell "
    "virus vaccine galaxy star ocean storm"
).split()


def varied_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"text {i} " + " ".join(rng.choice(WORDS, size=int(rng.integers(2, 40)))) for i in range(n)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(
        EncoderSpec(name="b", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    return model


# --- shard layout ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_texts", "n_shards", "chunk"),
    [(10, 3, 1), (4096 * 5 + 17, 4, 4096), (100, 2, 64), (5, 4, 2), (7, 1, 3)],
)
def test_shards_are_contiguous_runs_of_whole_chunks(n_texts: int, n_shards: int, chunk: int) -> None:
    from embedlab.encode.sharded import shard_bounds

    bounds = [shard_bounds(n_texts, i, n_shards, chunk) for i in range(n_shards)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n_texts
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))  # contiguous, in order
    assert all(start % chunk == 0 or start == n_texts for start, _ in bounds)  # cut at chunk boundaries
    n_chunks = [-(-(stop - start) // chunk) for start, stop in bounds]
    expected = [len(part) for part in np.array_split(np.arange(-(-n_texts // chunk)), n_shards)]
    assert n_chunks == expected  # chunks dealt as numpy.array_split deals items


def test_bad_shard_arguments_say_how_to_fix() -> None:
    from embedlab.encode.sharded import shard_bounds
    from embedlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--array=0-3"):
        shard_bounds(100, 4, 4)  # a 1-based SLURM array
    with pytest.raises(ConfigError, match="n_shards must be at least 1"):
        shard_bounds(100, 0, 0)


# --- in one process: the merge itself -------------------------------------------------------


def test_merged_shards_equal_one_process_encode_and_are_read_by_encode_cached(tiny, tmp_path: Path) -> None:
    """Reference (sentence-transformers, float32) backend, several chunks per shard."""
    from embedlab.encode.cache import EmbeddingCache, entry_key
    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.encode.sharded import encode_shard, merge_shards

    texts, chunk, settings = varied_texts(300), 32, EncodeSettings(batch_size=8)
    enc = Encoder(tiny, settings, EmbeddingCache(tmp_path / "sharded"))
    results = [encode_shard(enc, texts, i, 3, chunk_size=chunk) for i in (2, 0, 1)]
    assert sum(r.n_encoded for r in results) == len(texts)
    again = encode_shard(enc, texts, 1, 3, chunk_size=chunk)
    assert again.n_encoded == 0  # a requeued task encodes nothing
    merged = merge_shards(enc, texts, 3, chunk_size=chunk, what="documents")
    assert merged.key == entry_key(enc.key, texts) and merged.shape == (300, 32)
    assert not any(enc.cache.has(r.key) for r in results)  # shard entries removed once merged

    single, stats = Encoder(tiny, settings, EmbeddingCache(tmp_path / "single")).encode_cached(
        texts, chunk_size=chunk
    )
    assert stats is not None and stats.n_encoded == 300
    from_shards, none = enc.encode_cached(texts, chunk_size=chunk)
    assert none is None and enc.cache.stats.n_from_cache == 300  # the merged entry is encode_cached's entry
    np.testing.assert_array_equal(from_shards, single)  # same batches -> same bits
    assert merge_shards(enc, texts, 3, chunk_size=chunk).already_merged


def test_missing_corrupt_and_mismatched_shards_are_named(tiny, tmp_path: Path) -> None:
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder
    from embedlab.encode.sharded import ShardsMissingError, encode_shard, merge_shards
    from embedlab.errors import DataError

    texts, cache = varied_texts(40), EmbeddingCache(tmp_path)
    enc = Encoder(tiny, cache=cache)
    first = encode_shard(enc, texts, 0, 4, chunk_size=10)
    how = "python encode_corpus.py data=x shard={shard} n_shards=4"
    with pytest.raises(ShardsMissingError, match=r"shard\(s\) \[1, 2, 3\] are missing") as info:
        merge_shards(enc, texts, 4, chunk_size=10, how_to_run=how)
    assert info.value.missing == [1, 2, 3]
    assert "data=x shard=2 n_shards=4" in str(info.value)

    for i in (1, 2, 3):
        encode_shard(enc, texts, i, 4, chunk_size=10)
    npy = next(p for p in tmp_path.rglob("*.npy") if p.stem == first.key)
    npy.write_bytes(npy.read_bytes()[:-8] + b"garbage!")  # same size, wrong bytes
    with pytest.raises(ShardsMissingError, match=r"\[0\] is corrupt"):
        merge_shards(enc, texts, 4, chunk_size=10)

    cache.put(first.key, np.zeros((9, 32), np.float32))  # one row short of texts [0, 10)
    with pytest.raises(DataError, match=r"Shard 0/4 .* shape \(9, 32\)"):
        merge_shards(enc, texts, 4, chunk_size=10)


def test_distributed_context_from_lightning_and_environment(tiny, tmp_path: Path, monkeypatch) -> None:
    import lightning as L

    from embedlab.encode.cache import EmbeddingCache, entry_key
    from embedlab.encode.encoder import Encoder
    from embedlab.encode.sharded import distributed_context, encode_distributed
    from embedlab.errors import ConfigError

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    rank, world, barrier = distributed_context(trainer)
    assert (rank, world) == (0, 1)
    texts, enc = varied_texts(20), Encoder(tiny, cache=EmbeddingCache(tmp_path))
    result = encode_distributed(enc, texts, trainer=trainer, chunk_size=8)
    assert result is not None and result.key == entry_key(enc.key, texts) and enc.cache.has(result.key)
    monkeypatch.setenv("WORLD_SIZE", "2")  # ranks launched, but no process group
    with pytest.raises(ConfigError, match="init_process_group"):
        distributed_context()


# --- two real processes ---------------------------------------------------------------------


def write_beir(root: Path, n_docs: int = 4300, n_queries: int = 24) -> Path:
    """A BEIR folder of more than one encode chunk (4096 texts), with topical qrels."""
    rng = np.random.default_rng(1)
    topics = [rng.choice(WORDS, size=3, replace=False) for _ in range(n_queries)]
    root.mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for i in range(n_docs):
            t = topics[i % n_queries]
            words = list(t[: 1 + i % 3]) + list(rng.choice(WORDS, size=int(rng.integers(2, 12))))
            fh.write(json.dumps({"_id": f"d{i}", "title": f"doc {i}", "text": " ".join(words)}) + "\n")
    with (root / "queries.jsonl").open("w") as fh:
        for q, t in enumerate(topics):
            fh.write(json.dumps({"_id": f"q{q}", "text": "about " + " ".join(t)}) + "\n")
    (root / "qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"q{i % n_queries}\td{i}\t{1 + i % 2}" for i in range(0, n_docs, 7)]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(args_and_env: list[tuple[list[str], dict[str, str]]], timeout: int = 240) -> None:
    """``python encode_corpus.py`` in parallel processes; fails with their output."""
    base = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HYDRA_FULL_ERROR": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        base.pop(k, None)
    procs = [
        subprocess.Popen(
            [sys.executable, "encode_corpus.py", *args],
            cwd=ROOT,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for args, env in args_and_env
    ]
    outputs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, (args, _), out in zip(procs, args_and_env, outputs, strict=True):
        assert p.returncode == 0, f"encode_corpus {' '.join(args)} failed:\n{out[-4000:]}"


QUALITY = ("ndcg@", "recall@", "mrr@", "map@", "precision@", "accuracy@")


def assert_evaluation_reads_the_cache(make_cfg, tmp_path: Path, data: list[str], sharded_cache: Path) -> None:
    """evaluate.py on the merged cache encodes nothing and scores exactly as a one-process run."""
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.jobs import evaluate

    common = ["model=tiny_bert", *data, "logger=none", "encode.threads=1"]
    sharded, _ = evaluate(make_cfg(*common, f"paths.cache_dir={sharded_cache}", task="evaluate",
                                   output_dir=tmp_path / "eval_sharded"))  # fmt: skip
    single, _ = evaluate(make_cfg(*common, f"paths.cache_dir={tmp_path / 'single'}", task="evaluate",
                                  output_dir=tmp_path / "eval_single"))  # fmt: skip
    assert sharded["test/synth/n_texts_encoded"] == 0
    assert sharded["test/synth/n_texts_from_cache"] == single["test/synth/n_texts_encoded"] == 4300 + 24
    quality = {k: v for k, v in single.items() if k.split("/")[-1].startswith(QUALITY)}
    assert quality and {k: sharded[k] for k in quality} == quality  # identical, not approximately
    merged, fresh = (
        EmbeddingCache(sharded_cache / "embeddings"),
        EmbeddingCache(tmp_path / "single" / "embeddings"),
    )
    entries = sorted(p.stem for p in (sharded_cache / "embeddings").rglob("*.npy"))
    assert entries == sorted(p.stem for p in (tmp_path / "single" / "embeddings").rglob("*.npy"))
    assert len(entries) == 2  # documents and queries; the shard entries were removed
    for key in entries:
        np.testing.assert_array_equal(merged.get(key), fresh.get(key))


def test_two_ranks_torchrun_style_gloo(make_cfg, tmp_path: Path) -> None:
    """Two processes with torchrun's environment: each encodes its shard over gloo, rank 0 merges."""
    root = write_beir(tmp_path / "synth")
    data = ["data=beir", f"data.root={root}", "data.name=synth"]
    cache = tmp_path / "sharded"
    args = ["model=tiny_bert", *data, "logger=none", "encode.threads=1", f"paths.cache_dir={cache}",
            f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    port = str(free_port())
    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    run_processes([(args, {**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)])
    ranks = [json.loads((tmp_path / "run" / f"encode_corpus.rank{r}.json").read_text()) for r in (0, 1)]
    assert [s["n_texts_encoded"] for s in ranks] == [
        4096 + 24,
        4300 - 4096,
    ]  # one chunk each; queries: rank 0
    assert ranks[0]["lists"]["documents"]["merged"]["shape"] == [4300, 32]
    assert_evaluation_reads_the_cache(make_cfg, tmp_path, data, cache)


def test_slurm_array_tasks_then_merge(make_cfg, tmp_path: Path) -> None:
    """Array tasks 0 and 1, then ``--merge``: the same entry point, here in this process (the
    test above runs separate processes); a merge before the tasks names what is missing."""
    from embedlab.encode.sharded import ShardsMissingError
    from embedlab.jobs import encode_corpus_job as encode_corpus

    root = write_beir(tmp_path / "synth")
    data = ["data=beir", f"data.root={root}", "data.name=synth"]
    cache = tmp_path / "sharded"
    common = [
        "model=tiny_bert",
        *data,
        "logger=none",
        "encode.threads=1",
        f"paths.cache_dir={cache}",
        "n_shards=2",
    ]
    merge_cfg = make_cfg(*common, "merge=true", task="encode_corpus")
    with pytest.raises(ShardsMissingError, match=r"\[0, 1\] are missing") as info:
        encode_corpus(
            merge_cfg, ["data=beir", "merge=true", "model=tiny_bert", "n_shards=2"]
        )  # its overrides
    assert "python encode_corpus.py data=beir model=tiny_bert shard=1 n_shards=2" in str(info.value)
    for i in (1, 0):  # any order
        task = encode_corpus(
            make_cfg(*common, f"shard={i}", task="encode_corpus", output_dir=tmp_path / f"t{i}")
        )
        assert task["n_texts_encoded"] == [4096 + 24, 4300 - 4096][i]
    summary = encode_corpus(merge_cfg)
    assert summary["lists"]["documents"]["shape"] == (4300, 32) and summary["n_texts_encoded"] == 0
    assert_evaluation_reads_the_cache(make_cfg, tmp_path, data, cache)
