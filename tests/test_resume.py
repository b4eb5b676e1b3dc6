"""Exact resume: a run SIGKILLed mid-epoch and restarted with ckpt_path=last ends where an
uninterrupted run ends; checkpoints load with weights_only=True and pickles are refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from embedlab.data.resumable import ResumableDataLoader, SeededPermutation, resumable_loader

ROOT = Path(__file__).resolve().parents[1]


def _batches(loader) -> list[list[int]]:
    return [b.tolist() if isinstance(b, torch.Tensor) else list(b) for b in loader]


def test_order_matches_a_seeded_shuffling_dataloader() -> None:
    """Epoch after epoch, the same batches as DataLoader(shuffle=True, seeded generator),
    so runs recorded before the resumable loader keep their data order."""
    data = list(range(37))
    reference = DataLoader(data, batch_size=5, shuffle=True, generator=torch.Generator().manual_seed(7))
    ours = resumable_loader(data, len(data), 5, seed=7)
    for epoch in range(4):
        ours.batch_sampler.set_epoch(epoch)
        assert _batches(ours) == _batches(reference)


def test_order_depends_only_on_seed_and_epoch() -> None:
    a, b = SeededPermutation(50, seed=3), SeededPermutation(50, seed=3)
    b.set_epoch(2)
    assert a.order(2) == list(b) and a.order(1) != a.order(2)
    assert SeededPermutation(50, seed=4).order(2) != a.order(2)
    assert sorted(a.order(5)) == list(range(50))


def test_loader_state_skips_consumed_batches_of_that_epoch_only() -> None:
    data = list(range(23))
    first = resumable_loader(data, len(data), 4, seed=1)
    first.batch_sampler.set_epoch(1)
    it = iter(first)
    seen = [next(it).tolist() for _ in range(3)]
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batches_done"] == 3

    resumed = resumable_loader(data, len(data), 4, seed=1)
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(1)
    rest = _batches(resumed)
    reference = resumable_loader(data, len(data), 4, seed=1)
    reference.batch_sampler.set_epoch(1)
    assert seen + rest == _batches(reference)
    assert resumed.state_dict()["batches_done"] == len(reference)  # a second kill counts from the start
    # The saved position belongs to epoch 1: a resume that lands in epoch 2 starts it whole.
    other = resumable_loader(data, len(data), 4, seed=1)
    other.load_state_dict(state)
    other.batch_sampler.set_epoch(2)
    assert len(_batches(other)) == len(reference)


def test_loader_state_from_another_setup_is_refused() -> None:
    state = resumable_loader(list(range(20)), 20, 4, seed=1).state_dict()
    with pytest.raises(ValueError, match="data.batch_size = 4"):
        resumable_loader(list(range(20)), 20, 5, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed = 1"):
        resumable_loader(list(range(20)), 20, 4, seed=2).load_state_dict(state)


def test_no_duplicate_batches_resume_and_keep_their_invariant() -> None:
    from embedlab.data.datamodules import NoDuplicateBatches, RankingExample, collate_ranking

    examples = [RankingExample(f"q{i % 7}", f"d{i}") for i in range(30)]  # queries repeat
    sampler = NoDuplicateBatches(examples, batch_size=4, seed=0)
    sampler.sampler.set_epoch(3)  # what Lightning's _set_sampler_epoch reaches
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(30))
    assert all(len({examples[i].query for i in b}) == len(b) for b in batches)
    loader = ResumableDataLoader(examples, NoDuplicateBatches(examples, 4, 0), collate_fn=collate_ranking)
    loader.batch_sampler.set_epoch(3)
    it = iter(loader)
    next(it), next(it)
    resumed = ResumableDataLoader(examples, NoDuplicateBatches(examples, 4, 0), collate_fn=collate_ranking)
    resumed.load_state_dict(loader.state_dict())
    resumed.batch_sampler.set_epoch(3)
    assert [b["positive"] for b in resumed] == [[examples[i].positive for i in b] for b in batches[2:]]


# --- the real thing: train.py killed with SIGKILL, restarted with ckpt_path=last ------------

# 200 training pairs in batches of 8: 25 steps an epoch, a checkpoint every 5 steps.
RUN_ARGS = (
    "model=tiny_bert", "data=lee", "logger=none", "trainer.max_epochs=2", "data.max_pairs_per_split=200",
    "data.batch_size=8", "callbacks.resume_checkpoint.every_n_train_steps=5", "save_model=false",
    "embedding_cache=false",
)  # fmt: skip
STEPS_PER_EPOCH = 25


def _train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *RUN_ARGS, f"hydra.run.dir={run_dir}", *extra]


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def _metrics(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
    return {k: v for k, v in metrics.items() if not k.endswith("encode_texts_per_s")}  # timings differ


def _straight_and_killed(cmd, tmp_path: Path) -> tuple[Path, Path, subprocess.Popen, Path]:
    """Start an uninterrupted run and a victim run; SIGKILL the victim as soon as its first
    mid-epoch checkpoint exists. Returns (straight dir, killed dir, straight process, last.ckpt)."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    log = (tmp_path / "straight.log").open("w")
    reference = subprocess.Popen(cmd(straight), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    victim = subprocess.Popen(cmd(killed), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(victim.pid, signal.SIGKILL)  # with every DDP rank it started
    assert victim.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    return straight, killed, reference, last


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    from embedlab.models.tiny import build_tiny_model

    build_tiny_model("bert", max_seq_length=64)  # into the shared cache before two processes want it
    straight, killed, reference, last = _straight_and_killed(_train_cmd, tmp_path)
    assert not (killed / "results.json").exists()

    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # our checkpoints hold no pickles
    (position,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert position["epoch"] == 0 and 0 < position["batches_done"] < STEPS_PER_EPOCH, position
    assert ckpt["global_step"] == position["batches_done"]
    assert {"torch", "numpy", "python"} <= set(ckpt["embedlab_rng"])

    resumed = subprocess.run(
        _train_cmd(killed, "ckpt_path=last"),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {last}" in resumed.stderr + resumed.stdout
    assert reference.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    a, b = _metrics(straight), _metrics(killed)
    assert a.keys() == b.keys() and "test/lee/spearman_cosine" in a
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    meta = [
        json.loads((d / "results.json").read_text())["meta"]["train"]["steps"] for d in (straight, killed)
    ]
    assert meta == [2 * STEPS_PER_EPOCH] * 2


@pytest.mark.slow
def test_ddp_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    """Two gloo ranks on CPU: each rank's data position and RNG go into the checkpoint, so the resumed
    run sees the same per-rank batches and ends where the uninterrupted one does."""
    from embedlab.models.tiny import build_tiny_model

    build_tiny_model("bert", max_seq_length=64)
    ddp = ("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2")
    straight, killed, reference, last = _straight_and_killed(lambda d, *e: _train_cmd(d, *ddp, *e), tmp_path)

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    ranks = ckpt["embedlab_ranks"]
    assert [len(r["loaders"]) for r in ranks] == [1, 1]
    positions = [r["loaders"][0] for r in ranks]
    per_rank_steps = STEPS_PER_EPOCH // 2 + 1  # 100 pairs a rank in batches of 8
    assert (
        positions[0]["batches_done"] == positions[1]["batches_done"] == ckpt["global_step"] < per_rank_steps
    )
    assert all(p["world_size"] == 2 and p["epoch"] == 0 for p in positions)
    assert all({"torch", "numpy", "python"} <= set(r["rng"]) for r in ranks)

    resumed = subprocess.run(_train_cmd(killed, *ddp, "ckpt_path=last"), cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert reference.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    a, b = _metrics(straight), _metrics(killed)
    assert a.keys() == b.keys() and "test/lee/spearman_cosine" in a
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    # DDP without SLURM: Lightning re-launched train.py for rank 1; rank 0 alone wrote results.json
    logs = "".join(p.read_text() for p in straight.glob("*.log"))
    assert set(re.findall(r"GLOBAL_RANK: (\d+), MEMBER: \d+/(\d+)", logs)) == {("0", "2"), ("1", "2")}
    assert len(re.findall(r"Wrote \S*results\.json", logs)) == 1
    assert json.loads((straight / "results.json").read_text())["meta"]["distributed"]["world_size"] == 2


MLM_ARGS = (
    "model=tiny_bert", "objective=mlm", "data=mlm_lee", "data.max_texts=100", "data.batch_size=6",
    "trainer.max_epochs=2", "logger=none", "callbacks.resume_checkpoint.every_n_train_steps=5",
    "objective.general_probe.max_pairs=60",
)  # fmt: skip
MLM_STEPS_PER_EPOCH = 15  # 90 training texts (10% held out) in batches of 6


@pytest.mark.slow
def test_mlm_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    """Continued MLM resumes exactly too: data position, masking generator and dropout RNG."""
    from embedlab.models.tiny import build_tiny_model

    build_tiny_model("bert", max_seq_length=64)

    def cmd(run_dir: Path, *extra: str) -> list[str]:
        return [sys.executable, str(ROOT / "train.py"), *MLM_ARGS, f"hydra.run.dir={run_dir}", *extra]

    straight, killed, reference, last = _straight_and_killed(cmd, tmp_path)

    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    (position,) = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert position["epoch"] == 0 and 0 < position["batches_done"] < MLM_STEPS_PER_EPOCH, position
    assert "mask_rng" in position["collate"] and "embedlab_rng" in ckpt

    resumed = subprocess.run(cmd(killed, "ckpt_path=last"), cwd=ROOT, env=_env(), capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {last}" in resumed.stderr + resumed.stdout
    assert reference.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]

    a, b = (json.loads((d / "results.json").read_text()) for d in (straight, killed))
    assert a["metrics"].keys() == b["metrics"].keys()
    assert "val/lee_background/perplexity_after" in a["metrics"]
    for key, value in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert a["meta"]["mlm"]["steps"] == b["meta"]["mlm"]["steps"] == 2 * MLM_STEPS_PER_EPOCH


class NotATensor:
    """Any picklable object: unpickling a checkpoint may run code, so embedlab refuses it."""

    def __init__(self) -> None:
        self.payload = "would run on load"


def test_checkpoint_with_a_pickled_object_is_refused(make_cfg, tmp_path: Path) -> None:
    from embedlab.errors import ConfigError
    from embedlab.jobs import train

    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "extra": NotATensor()}, bad)
    cfg = make_cfg("model=tiny_bert", "data=lee", "logger=none", "debug=fast", f"ckpt_path={bad}")
    with pytest.raises(ConfigError, match="pickled Python objects") as info:
        train(cfg)
    assert "weights_only=True" in str(info.value) and "NotATensor" in str(info.value)


def test_missing_checkpoint_path_is_a_clear_error(make_cfg, tmp_path: Path) -> None:
    from embedlab.errors import ConfigError
    from embedlab.jobs import train

    cfg = make_cfg(
        "model=tiny_bert", "data=lee", "logger=none", "debug=fast", f"ckpt_path={tmp_path / 'no.ckpt'}"
    )
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        train(cfg)


def test_ddp_ranks_get_disjoint_shards_of_the_seeded_order() -> None:
    """Under DDP each rank batches its own stride of the (seed, epoch) order, padded like
    DistributedSampler: together the ranks cover every item, and every rank takes the same number of steps."""
    data = list(range(23))
    loaders = [resumable_loader(data, len(data), 4, seed=5, rank=r, world=2) for r in range(2)]
    for epoch in (0, 3):
        for dl in loaders:
            dl.batch_sampler.set_epoch(epoch)
        seen = [[i for b in _batches(dl) for i in b] for dl in loaders]
        order = SeededPermutation(23, seed=5).order(epoch)
        assert seen == [(order + order[:1])[r::2] for r in range(2)]
        assert len(loaders[0]) == len(loaders[1]) == 3
    from torch.utils.data import DistributedSampler

    assert isinstance(loaders[1].sampler, DistributedSampler)  # Lightning injects no sampler of its own
    assert not isinstance(resumable_loader(data, 23, 4, seed=5).sampler, DistributedSampler)


def test_ddp_packed_batches_keep_ranks_in_step_and_resume() -> None:
    from embedlab.data.datamodules import NoDuplicateBatches, RankingExample

    shared = [f"shared {i % 3}" for i in range(40)]  # repeated positives force extra batches
    examples = [RankingExample(query=f"q{i}", positive=shared[i], negatives=()) for i in range(40)]
    ranks = []
    for rank in range(2):
        batches = NoDuplicateBatches(examples, 8, seed=2)
        batches.shard(rank, 2)
        batches.set_epoch(1)
        ranks.append(batches.batches())
    assert len(ranks[0]) == len(ranks[1]) > 0
    loader = ResumableDataLoader(examples, NoDuplicateBatches(examples, 8, seed=2), collate_fn=list)
    loader.batch_sampler.shard(1, 2)
    loader.load_state_dict({"epoch": 1, "batches_done": 2, **loader._run_identity()})
    loader.batch_sampler.set_epoch(1)
    assert [[e.query for e in b] for b in loader] == [[examples[i].query for i in b] for b in ranks[1][2:]]
    with pytest.raises(ValueError, match="DDP processes"):
        loader.load_state_dict({"epoch": 1, "batches_done": 2, **loader._run_identity(), "world_size": 4})
