"""The sweep report: scanning, seed folding, ranking, Pareto fronts, budgets, encode
passes, the written files, W&B (offline), the Hydra callback and the CLI.

The fake sweep is a 3 models x 2 poolings x 2 seeds retrieval multirun whose numbers are
chosen so every expected value below can be checked by hand:

    cell      ndcg@10 (seed 1, seed 2)   docs/s  index MB  p50 ms
    a/mean    0.60, 0.62                 105     40        0.5
    a/cls     0.55, 0.57                 300     35        0.3
    b/mean    0.70, 0.66                 50      80        1.5
    b/cls     0.64, 0.66                 150     60        0.8
    c/mean    killed, 0.50               400     10        0.2
    c/cls     NaN, 0.58                  200     30        0.4

Seed 1 encodes the corpus and seed 2 reads it from the cache (no throughput key), except
for c/mean whose seed 1 was killed, so its seed 2 encoded.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from embedlab.eval.variants import Cell, cells_record, index_tag, variant_grid
from embedlab.report.cells import build_table, pareto_front, quality_of
from embedlab.report.hydra_callback import planned_overrides
from embedlab.report.recommend import Budget, build_report, count_encode_passes, recommend
from embedlab.report.scan import diagnose, read_job, scan

ROOT = Path(__file__).resolve().parents[2]
MONITOR = "test/scifact/ndcg@10"
# (model, pooling) -> (quality seed 1, quality seed 2, throughput, index MB, p50 ms)
CELLS: dict[tuple[str, str], tuple[float | None, float | None, float, float, float]] = {
    ("a", "mean"): (0.60, 0.62, 105.0, 40.0, 0.5),
    ("a", "cls"): (0.55, 0.57, 300.0, 35.0, 0.3),
    ("b", "mean"): (0.70, 0.66, 50.0, 80.0, 1.5),
    ("b", "cls"): (0.64, 0.66, 150.0, 60.0, 0.8),
    ("c", "mean"): (None, 0.50, 400.0, 10.0, 0.2),  # seed 1 killed
    ("c", "cls"): (None, 0.58, 200.0, 30.0, 0.4),  # seed 1 finished with a NaN metric
}
KILLED = ("c", "mean", 1)


def job_config(model: str, pooling: str, seed: int, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "task_name": "evaluate",
        "seed": seed,
        "monitor": MONITOR,
        "monitor_mode": "max",
        "model": {"name": model},
        "pooling": {"mode": pooling},
        "dimension": {"name": "full", "size": None, "method": "truncate"},
        "quantization": {"name": "none", "weights": "fp32", "embeddings": "float32", "rescore_multiplier": 0},
        "index": {"kind": "hnsw"},
        "data": {"name": "scifact", "metric": "ndcg@10", "task": "retrieval"},
        "logger": {},
    }
    for key, value in over.items():
        cfg[key] = value
    return cfg


def cells_of(config: dict[str, Any], full_dim: int = 384) -> list[Cell]:
    """The cells the evaluation would score for this config (as the tasks pass them)."""
    d, q, index = config["dimension"], config["quantization"], config.get("index") or {}
    size = d.get("size")
    sts = config["data"].get("task") == "sts"
    return variant_grid(
        full_dim,
        dims=(size,) if size and d["method"] == "truncate" else (),
        pca_dims=(size,) if size and d["method"] == "pca" else (),
        precisions=(q["embeddings"],),
        rescore=0 if sts else int(q["rescore_multiplier"]),
        index=None if sts or not index.get("kind") else index_tag(index["kind"], index.get("params")),
    )


def write_job(
    sweep: Path,
    num: int,
    overrides: list[str],
    metrics: dict[str, float | None] | None,
    config: dict[str, Any] | None,
    log_lines: list[str] = (),  # type: ignore[assignment]
    log_name: str = "evaluate.log",
) -> Path:
    """A job folder as Hydra and results.json leave it; metrics=None means no results.json."""
    job = sweep / f"{num}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if config is not None:
        (job / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    if log_lines:
        (job / log_name).write_text("\n".join(log_lines) + "\n")
    if metrics is not None:
        meta = {"task": "evaluate", "run_name": ",".join(overrides), "config": config, "wall_time_s": 1.0,
                "cells": cells_record(cells_of(config)) if config else []}  # fmt: skip
        (job / "results.json").write_text(json.dumps({"metrics": metrics, "meta": meta}))
    return job


def write_multirun_yaml(sweep: Path, task: list[str]) -> None:
    conf = {
        "hydra": {
            "sweeper": {
                "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                "max_batch_size": None,
                "params": None,
            },
            "overrides": {"hydra": [f"hydra.sweep.dir={sweep}"], "task": task},
        }
    }
    (sweep / "multirun.yaml").write_text(json.dumps(conf))


def make_sweep(root: Path) -> Path:
    """The fake multirun described in the module docstring (job numbers as BasicSweeper orders them)."""
    sweep = root / "multiruns" / "2026-01-02" / "03-04-05"
    sweep.mkdir(parents=True)
    write_multirun_yaml(sweep, ["model=a,b,c", "pooling=mean,cls", "seed=1,2"])
    num = 0
    for (model, pooling), (q1, q2, thr, mb, ms) in CELLS.items():
        for seed, q in ((1, q1), (2, q2)):
            overrides = [f"model={model}", f"pooling={pooling}", f"seed={seed}"]
            if (model, pooling, seed) == KILLED:
                write_job(
                    sweep, num, overrides, None, None,
                    log_lines=["[2026-01-02 03:04:05,000][embedlab.run][INFO] - Encoding 5183 documents", "Killed"],
                )  # fmt: skip
                num += 1
                continue
            encodes = seed == 1 or (model, pooling) == ("c", "mean")
            metrics: dict[str, float | None] = {
                MONITOR: q,
                "test/scifact/recall@100": 0.9,
                "test/scifact/bytes_per_vector@float32": 1536.0,
                "test/scifact/index_total_mb@hnsw": mb,
                "test/scifact/index_latency_p50_ms@hnsw": ms,
                "test/scifact/n_texts_encoded": 5483.0 if encodes else 0.0,
                "test/scifact/n_texts_from_cache": 0.0 if encodes else 5483.0,
            }
            if encodes:
                metrics["test/scifact/encode_documents_per_s"] = thr
            write_job(sweep, num, overrides, metrics, job_config(model, pooling, seed))
            num += 1
    return sweep


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path)


def row_of(rows, model: str, pooling: str):
    return next(r for r in rows if r.axes["model"] == model and r.axes["pooling"] == pooling)


# --- scanning -----------------------------------------------------------------------------


def test_scan_reads_every_job_and_lists_the_killed_one(sweep: Path) -> None:
    jobs = scan(sweep, running_window_s=0)
    assert len(jobs) == 12
    assert [j.num for j in jobs] == list(range(12))
    failed = [j for j in jobs if j.status != "ok"]
    assert len(failed) == 1
    (dead,) = failed
    assert dead.status == "failed" and dead.reason == "Killed"
    assert (dead.axes["model"], dead.axes["pooling"], dead.seed) == ("c", "mean", 1)
    # It had no config.yaml: the axes it did not override come from its siblings.
    assert dead.axes["data"] == "scifact" and dead.axes["index"] == "hnsw"
    ok = next(j for j in jobs if j.ok)
    assert ok.axes == {
        "model": "a",
        "pooling": "mean",
        "dimension": "full",
        "quantization": "none",
        "index": "hnsw",
        "fusion": "none",
        "data": "scifact",
    }
    assert ok.monitor == MONITOR and ok.seed == 1
    nan_job = next(
        j for j in jobs if j.ok and j.axes["model"] == "c" and j.axes["pooling"] == "cls" and j.seed == 1
    )
    assert math.isnan(nan_job.metrics[MONITOR])  # JSON null -> NaN


def test_unstarted_jobs_of_a_stopped_sweep_are_listed(sweep: Path) -> None:
    import shutil

    last = next(p for p in sweep.iterdir() if p.name.startswith("11_"))
    shutil.rmtree(last)
    assert len(scan(sweep, running_window_s=0)) == 11  # without the plan, only what is on disk
    jobs = scan(sweep, running_window_s=0, planner=planned_overrides)
    assert len(jobs) == 12
    missing = jobs[-1]
    assert missing.status == "not_started" and missing.num == 11
    assert sorted(missing.overrides) == ["model=c", "pooling=cls", "seed=2"]


def test_sweep_plan_expands_like_the_basic_sweeper(tmp_path: Path) -> None:
    """Sweeper params first, task overrides after; a later value of a key replaces it in place."""
    write_multirun_yaml(tmp_path, ["pooling=mean,cls", "seed=range(1,3)", "index=hnsw"])
    conf = json.loads((tmp_path / "multirun.yaml").read_text())
    conf["hydra"]["sweeper"]["params"] = {"index": "exact,flat", "model": "a"}
    (tmp_path / "multirun.yaml").write_text(json.dumps(conf))
    assert planned_overrides(tmp_path) == [
        ["index=hnsw", "model=a", "pooling=mean", "seed=1"],
        ["index=hnsw", "model=a", "pooling=mean", "seed=2"],
        ["index=hnsw", "model=a", "pooling=cls", "seed=1"],
        ["index=hnsw", "model=a", "pooling=cls", "seed=2"],
    ]
    conf["hydra"]["sweeper"]["_target_"] = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    (tmp_path / "multirun.yaml").write_text(json.dumps(conf))
    assert planned_overrides(tmp_path) is None  # adaptive sweepers have no plan


def test_diagnose_running_vs_dead_and_error_file(tmp_path: Path) -> None:
    job = tmp_path / "0_model=a"
    job.mkdir()
    (job / "train.log").write_text("[2026][embedlab.run][INFO] - epoch 1\n")
    now = time.time()
    assert diagnose(job, now=now, running_window_s=600)[0] == "running"
    status, reason = diagnose(job, now=now + 3600, running_window_s=600)
    assert status == "failed" and reason == "no results.json; log ends: epoch 1"
    (job / "train.log").write_text(
        "[a][b][WARNING] - slow\n[a][b][ERROR] - CUDA out of memory. Tried to allocate\n"
    )
    assert diagnose(job, now=now)[1] == "CUDA out of memory. Tried to allocate"
    (job / "error.txt").write_text("Traceback (most recent call last):\n  File x\nValueError: bad pooling\n")
    assert diagnose(job, now=now) == ("failed", "ValueError: bad pooling")


def test_unreadable_results_is_a_failure(tmp_path: Path) -> None:
    job = tmp_path / "0_x=1"
    job.mkdir()
    (job / "results.json").write_text("{not json")
    rec = read_job(job)
    assert rec.status == "failed" and "unreadable results.json" in rec.reason


# --- table, seeds, ranking, Pareto --------------------------------------------------------------


def test_seeds_fold_into_mean_and_sample_std(sweep: Path) -> None:
    rows = build_table(scan(sweep, running_window_s=0))
    assert len(rows) == 6
    b_mean = row_of(rows, "b", "mean")
    assert b_mean.n_seeds == 2 and b_mean.seeds == [1, 2]
    assert b_mean.quality_mean == pytest.approx(0.68)
    assert b_mean.quality_std == pytest.approx(math.sqrt(((0.70 - 0.68) ** 2 + (0.66 - 0.68) ** 2) / 1))
    a_mean = row_of(rows, "a", "mean")
    assert a_mean.quality_std == pytest.approx(0.0141421356, abs=1e-9)
    # throughput: seed 1 encoded, seed 2 read the cache; the cell takes the measured one
    assert a_mean.throughput == pytest.approx(105.0) and not a_mean.throughput_shared
    assert a_mean.memory_mb == pytest.approx(40.0) and a_mean.latency_ms == pytest.approx(0.5)
    assert a_mean.bytes_per_vector == pytest.approx(1536.0)
    # NaN seed: counted as a completed seed, kept out of the mean; std needs two finite values
    c_cls = row_of(rows, "c", "cls")
    assert (c_cls.n_seeds, c_cls.n_nan) == (2, 1)
    assert c_cls.quality_mean == pytest.approx(0.58) and math.isnan(c_cls.quality_std)
    # killed seed: the cell keeps one completed seed and counts the failure
    c_mean = row_of(rows, "c", "mean")
    assert (c_mean.n_seeds, c_mean.n_failed, c_mean.quality_mean) == (1, 1, pytest.approx(0.50))


def test_ranking_order(sweep: Path) -> None:
    rows = build_table(scan(sweep, running_window_s=0))
    order = [(r.axes["model"], r.axes["pooling"]) for r in rows]
    assert order == [("b", "mean"), ("b", "cls"), ("a", "mean"), ("c", "cls"), ("a", "cls"), ("c", "mean")]
    assert [r.rank for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].label == "model=b, pooling=mean"


def test_explicit_metric_and_min_mode(sweep: Path) -> None:
    jobs = scan(sweep, running_window_s=0)
    rows = build_table(jobs, "test/scifact/index_latency_p50_ms@hnsw", mode="min")
    assert [(r.axes["model"], r.axes["pooling"]) for r in rows][0] == ("c", "mean")  # 0.2 ms is best


def test_pareto_front_by_hand() -> None:
    pts = [(1.0, 1.0), (2.0, 0.5), (0.5, 0.5), (2.0, 0.5), (float("nan"), 9.0)]
    # (0.5, 0.5) is dominated by (1, 1); the two (2, 0.5) tie and both stay; NaN never is
    assert pareto_front(pts) == [True, True, False, True, False]
    assert pareto_front([(1.0, 1.0), (2.0, 1.0)], maximize=(False, True)) == [True, False]


def test_pareto_flags_on_the_sweep(sweep: Path) -> None:
    rows = build_table(scan(sweep, running_window_s=0))
    thr = {(r.axes["model"], r.axes["pooling"]): r.pareto_throughput for r in rows}
    mem = {(r.axes["model"], r.axes["pooling"]): r.pareto_memory for r in rows}
    # a/mean (105/s, 0.61) is beaten by b/cls (150/s, 0.65); every other point is a trade-off
    assert thr == {("b", "mean"): True, ("b", "cls"): True, ("a", "mean"): False,
                   ("c", "cls"): True, ("a", "cls"): True, ("c", "mean"): True}  # fmt: skip
    # a/cls (35 MB, 0.56) is beaten by c/cls (30 MB, 0.58)
    assert mem == {("b", "mean"): True, ("b", "cls"): True, ("a", "mean"): True,
                   ("c", "cls"): True, ("a", "cls"): False, ("c", "mean"): True}  # fmt: skip


# --- recommendation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (Budget(), ("b", "mean")),
        (Budget(max_latency_ms=1.0), ("b", "cls")),  # b/mean needs 1.5 ms
        (Budget(max_latency_ms=1.0, min_throughput=200), ("c", "cls")),
        (Budget(max_latency_ms=1.0, min_throughput=200, max_memory_mb=20), ("c", "mean")),
    ],
)
def test_recommendation_under_budget(sweep: Path, budget: Budget, expected: tuple[str, str]) -> None:
    (rec,) = recommend(build_table(scan(sweep, running_window_s=0)), budget)
    assert rec.met_budget and rec.choice is not None
    assert (rec.choice.axes["model"], rec.choice.axes["pooling"]) == expected
    assert rec.text.startswith(f"Use model={expected[0]}, pooling={expected[1]},")
    assert budget.describe() in rec.text


def test_recommendation_names_what_the_best_misses(sweep: Path) -> None:
    (rec,) = recommend(build_table(scan(sweep, running_window_s=0)), Budget(max_latency_ms=1.0))
    assert "Nominal best: model=b, pooling=mean (test/scifact/ndcg@10 = 0.6800" in rec.text
    assert "not picked: p50 latency 1.5 ms > 1 ms." in rec.text
    assert "No per-query results were found, so sampling noise was not tested" in rec.text
    assert "test/scifact/ndcg@10 = 0.6500 ± 0.0141 over 2 seeds" in rec.text


def test_nothing_meets_the_budget(sweep: Path) -> None:
    (rec,) = recommend(build_table(scan(sweep, running_window_s=0)), Budget(max_memory_mb=5))
    assert not rec.met_budget and rec.choice is None and rec.n_meeting == 0
    assert rec.text.startswith("Nothing meets the budget (index memory <= 5 MB) for scifact")
    # closest: c/mean at 10 MB misses by 100 %, every other cell by more
    assert "Closest is model=c, pooling=mean," in rec.text
    assert "index memory 10 MB > 5 MB" in rec.text


def test_unmeasured_cost_never_meets_a_limit(tmp_path: Path) -> None:
    sweep = tmp_path / "sts"
    for num, (pooling, q) in enumerate((("mean", 0.8), ("cls", 0.7))):
        cfg = job_config("m", pooling, 1, monitor="test/stsb/spearman_cosine", index={})
        write_job(
            sweep,
            num,
            [f"pooling={pooling}"],
            {"test/stsb/spearman_cosine": q, "test/stsb/encode_texts_per_s": 500.0},
            cfg,
        )
    rows = build_table(scan(sweep))
    assert rows[0].axes["index"] == "none" and rows[0].throughput == pytest.approx(500.0)
    (rec,) = recommend(rows, Budget(max_latency_ms=1.0))
    assert not rec.met_budget and "p50 latency not measured" in rec.text
    (rec,) = recommend(rows, Budget(min_throughput=400))
    assert rec.met_budget and rec.choice is not None and rec.choice.axes["pooling"] == "mean"


def test_variant_aware_quality_and_borrowed_throughput(tmp_path: Path) -> None:
    sweep = tmp_path / "variants"
    base = {MONITOR: 0.70, f"{MONITOR}@128": 0.66, f"{MONITOR}@int8": 0.69, f"{MONITOR}@hnsw": 0.68,
            f"{MONITOR}@128@int8": 0.65, f"{MONITOR}@128@hnsw": 0.64,
            "test/scifact/bytes_per_vector@float32": 1536.0, "test/scifact/bytes_per_vector@int8": 384.0,
            "test/scifact/bytes_per_vector@128": 512.0, "test/scifact/bytes_per_vector@128@int8": 128.0}  # fmt: skip
    full = job_config("m", "mean", 1, index={})
    d128 = job_config("m", "mean", 1, index={}, dimension={"name": "d128", "size": 128, "method": "truncate"})
    int8 = job_config("m", "mean", 1, index={},
                      quantization={"name": "int8", "weights": "fp32", "embeddings": "int8", "rescore_multiplier": 0})  # fmt: skip
    both = job_config(
        "m", "mean", 1, index={"kind": "hnsw"}, dimension=d128["dimension"], quantization=int8["quantization"]
    )
    write_job(sweep, 0, ["dimension=full"], {**base, "test/scifact/encode_documents_per_s": 120.0}, full)
    write_job(sweep, 1, ["dimension=d128"], base, d128)
    write_job(sweep, 2, ["quantization=int8"], base, int8)
    write_job(sweep, 3, ["dimension=d128", "quantization=int8", "index=hnsw"], base, both)
    jobs = scan(sweep)
    assert quality_of(jobs[0]) == (MONITOR, 0.70)
    assert quality_of(jobs[1]) == (f"{MONITOR}@128", 0.66)
    assert quality_of(jobs[2]) == (f"{MONITOR}@int8", 0.69)
    key, value = quality_of(jobs[3])  # two deployed cells (precision, index) at 128 dims: the worse
    assert (key, value) == (f"worst of ({MONITOR}@128@int8, {MONITOR}@128@hnsw)", 0.64)
    assert [c.tag for c in jobs[3].deployed] == ["@128@int8", "@128@hnsw"]
    assert jobs[3].meta["cells"][-1] == {
        "tag": "@128@hnsw",
        "axes": {
            "dimension": 128,
            "dim_method": "truncate",
            "precision": "float32",
            "rescore": 0,
            "index": "hnsw",
            "fusion": None,
        },
    }
    assert quality_of(jobs[3], variant_aware=False) == (MONITOR, 0.70)
    rows = {
        r.axes["dimension"] + "/" + r.axes["quantization"] + "/" + r.axes["index"]: r
        for r in build_table(jobs)
    }
    # the cached cells borrow the throughput of the job that encoded with the same encoder
    assert (
        rows["d128/none/none"].throughput == pytest.approx(120.0) and rows["d128/none/none"].throughput_shared
    )
    assert not rows["full/none/none"].throughput_shared
    # bytes per vector are read at the deployed cell's dimension and precision
    assert rows["d128/none/none"].bytes_per_vector == pytest.approx(512.0)
    assert rows["full/int8/none"].bytes_per_vector == pytest.approx(384.0)
    assert rows["d128/int8/hnsw"].bytes_per_vector == pytest.approx(128.0)


def test_reranked_ivf_pq_is_its_own_cell_with_its_own_numbers(tmp_path: Path) -> None:
    sweep = tmp_path / "pq"
    plain = job_config(
        "m", "mean", 1, index={"kind": "ivf_pq", "params": {"nprobe": 16, "rescore_multiplier": 0}}
    )
    deep = job_config(
        "m", "mean", 1, index={"kind": "ivf_pq", "params": {"nprobe": 16, "rescore_multiplier": 32}}
    )
    metrics = {MONITOR: 0.645, f"{MONITOR}@ivf_pq": 0.49, f"{MONITOR}@ivf_pq+rescore32": 0.60,
               "test/scifact/index_total_mb@ivf_pq": 0.7, "test/scifact/index_total_mb@ivf_pq+rescore32": 8.3}  # fmt: skip
    write_job(sweep, 0, ["index=ivf_pq"], metrics, plain)
    write_job(sweep, 1, ["index=ivf_pq_rescore"], metrics, deep)
    rows = {r.axes["index"]: r for r in build_table(scan(sweep))}
    assert set(rows) == {"ivf_pq", "ivf_pq+rescore32"}
    assert rows["ivf_pq"].qualities == [pytest.approx(0.49)]
    assert rows["ivf_pq+rescore32"].qualities == [pytest.approx(0.60)]
    assert rows["ivf_pq+rescore32"].memory_mb == pytest.approx(8.3)


# --- encode passes ------------------------------------------------------------------------------


def test_encode_passes_held(sweep: Path) -> None:
    enc = count_encode_passes(scan(sweep, running_window_s=0))
    # one encoding job per (model, pooling): a,b,c x mean,cls (c/cls seed 1 encoded though its metric is NaN)
    assert (enc.passes, enc.encoder_combos, enc.needed, enc.per_dataset) == (6, 6, 6, {"scifact": 6})
    assert enc.held and "held: encode once, score many" in enc.summary()


def test_encode_passes_not_held(sweep: Path) -> None:
    job = next(p for p in sweep.iterdir() if p.name.startswith("1_"))  # a/mean seed 2 re-encoded
    payload = json.loads((job / "results.json").read_text())
    payload["metrics"]["test/scifact/n_texts_encoded"] = 5483.0
    (job / "results.json").write_text(json.dumps(payload))
    enc = count_encode_passes(scan(sweep, running_window_s=0))
    assert (enc.passes, enc.encoder_combos) == (7, 6) and not enc.held
    assert "did not hold: 1 extra pass(es)" in enc.summary()


# --- files ------------------------------------------------------------------------------------------


def test_written_files_and_self_contained_html(sweep: Path) -> None:
    from embedlab.report.render import write_report

    report = build_report(sweep, budget=Budget(max_latency_ms=1.0), running_window_s=0)
    assert report.sweep_id == "sweep-2026-01-02_03-04-05"  # the group embedlab.run gives job runs
    files = write_report(report)
    assert files.out_dir == sweep / "report"
    for path in (files.markdown, files.csv, files.jobs_csv, files.html, files.json, *files.plots.values()):
        assert path.is_file() and path.stat().st_size > 0
    assert set(files.plots) == {"throughput", "memory"}
    assert files.plots["throughput"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = files.markdown.read_text()
    assert "## Recommendation" in md and "Use model=b, pooling=cls" in md
    assert "| 1 | b | mean | 0.6800 | 0.0283 | 2 |" in md
    assert "Killed" in md and "8_model=c,pooling=mean,seed=1" in md
    assert "![quality vs throughput](pareto_throughput.png)" in md

    import csv

    with files.csv.open() as fh:
        table = list(csv.DictReader(fh))
    assert [(r["model"], r["pooling"]) for r in table][:2] == [("b", "mean"), ("b", "cls")]
    assert float(table[0]["quality_mean"]) == pytest.approx(0.68) and table[0]["n_seeds"] == "2"
    with files.jobs_csv.open() as fh:
        jobs = list(csv.DictReader(fh))
    assert len(jobs) == 12 and [j["status"] for j in jobs].count("failed") == 1

    page = files.html.read_text()
    assert page.count("<img alt='quality vs") == 2
    blob = page.split("<img alt='quality vs throughput' src='data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(blob)[:4] == b"\x89PNG"
    # self-contained: nothing fetched (plotly.js is inline, once), both fronts interactive
    assert "<link" not in page and not re.search(r"<(script|img)[^>]*\ssrc=.(https?:|//)", page)
    assert page.count("plotly.js v") == 1 and page.count("Plotly.newPlot(") == 2

    summary = json.loads(files.json.read_text())
    assert summary["recommendations"][0]["met_budget"] is True
    assert summary["encode"]["passes"] == 6 and summary["counts"] == {"ok": 11, "failed": 1}


# --- W&B ------------------------------------------------------------------------------------------------


def test_wandb_summary_run_offline(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedlab.report.render import write_report
    from embedlab.report.wandb_report import log_to_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    report = build_report(sweep, running_window_s=0)
    files = write_report(report, tmp_path / "out")
    result = log_to_wandb(report, files.html, files.plots, mode="auto")
    assert result is not None and result.mode == "offline" and result.finished
    assert result.group == report.sweep_id
    assert Path(result.run_dir).resolve().is_relative_to((tmp_path / "wb").resolve())
    run_folder = Path(result.run_dir).parent
    assert run_folder.name.startswith("offline-run-") and any(run_folder.glob("*.wandb"))
    import wandb

    assert wandb.run is None  # finished, nothing left open for the next job


def test_wandb_disabled_logs_nothing(sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedlab.report.render import write_report
    from embedlab.report.wandb_report import log_to_wandb

    report = build_report(sweep, running_window_s=0)
    files = write_report(report, tmp_path / "o")
    assert log_to_wandb(report, files.html, files.plots, mode="disabled") is None


def test_wandb_report_spec_and_object(sweep: Path) -> None:
    from embedlab.report.wandb_report import wandb_report_spec

    report = build_report(sweep, running_window_s=0)
    spec = wandb_report_spec(report, project="proj", entity="team")
    json.dumps(spec)  # plain data
    group = report.sweep_id
    assert spec["runsets"]["jobs"]["filters"] == f"Group = '{group}' and JobType != 'report'"
    grids = [b for b in spec["blocks"] if b["type"] == "PanelGrid"]
    scatter = [p for p in grids[0]["panels"] if p["type"] == "ScatterPlot"]
    assert {p["x"]["summary"] for p in scatter} == {
        "test/scifact/encode_documents_per_s",
        "test/scifact/index_total_mb@hnsw",
        "test/scifact/index_latency_p50_ms@hnsw",
    }
    assert all(p["y"] == {"summary": MONITOR} for p in scatter)

    pytest.importorskip("wandb_workspaces")
    import wandb_workspaces.reports.v2 as wr

    from embedlab.report.wandb_report import build_wandb_report

    obj = build_wandb_report(spec)
    assert isinstance(obj, wr.Report)
    assert (obj.project, obj.entity, obj.title) == ("proj", "team", f"Sweep {group}: decision report")
    kinds = [type(b).__name__ for b in obj.blocks]
    assert kinds[0] == "H1" and kinds.count("PanelGrid") == 2 and "MarkdownBlock" in kinds
    jobs_grid, report_grid = (b for b in obj.blocks if isinstance(b, wr.PanelGrid))
    assert jobs_grid.runsets[0].filters == spec["runsets"]["jobs"]["filters"]
    assert {type(p).__name__ for p in jobs_grid.panels} == {
        "ScatterPlot",
        "ParallelCoordinatesPlot",
        "BarPlot",
        "RunComparer",
    }
    first = next(p for p in jobs_grid.panels if isinstance(p, wr.ScatterPlot))
    assert isinstance(first.y, wr.SummaryMetric) and first.y.name == MONITOR
    assert [p.table_name for p in report_grid.panels if isinstance(p, wr.WeavePanelSummaryTable)] == [
        "report/ranked",
        "report/jobs",
    ]


# --- Hydra callback ---------------------------------------------------------------------------------------


def test_hydra_callback_writes_report_and_never_raises(
    sweep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from omegaconf import OmegaConf

    from embedlab.report.hydra_callback import ReportCallback

    cb = ReportCallback(max_latency_ms=1.0)
    cb.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "logger": None}))
    assert "Use model=b, pooling=cls" in (sweep / "report" / "report.md").read_text()

    with caplog.at_level(logging.ERROR):
        ReportCallback().on_multirun_end(
            OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "nope")}}})
        )
    assert "Sweep report for" in caplog.text and "failed" in caplog.text


def test_hydra_callback_records_a_failed_jobs_exception(tmp_path: Path) -> None:
    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    from embedlab.report.hydra_callback import ReportCallback

    job = tmp_path / "0_pooling=bad"
    job.mkdir()
    try:
        raise ValueError("Unknown pooling 'bad'")
    except ValueError as exc:
        ret = SimpleNamespace(status=JobStatus.FAILED, _return_value=exc, working_dir=str(tmp_path))
    ReportCallback().on_job_end(OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job)}}}), ret)
    assert diagnose(job, running_window_s=0) == ("failed", "ValueError: Unknown pooling 'bad'")


# --- CLI --------------------------------------------------------------------------------------------------


def _load_cli():
    spec = importlib.util.spec_from_file_location("report_cli", ROOT / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_help_is_fast_and_light() -> None:
    code = (
        "import runpy, sys; sys.argv = ['report.py', '--help']\n"
        "try:\n    runpy.run_path('report.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'wandb', 'pandas', 'hydra') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "--max-latency-ms" in out.stdout and "HEAVY []" in out.stdout
    assert elapsed < 5.0  # < 1.5 s on an idle machine; slack for a busy CI box


def test_cli_runs_on_a_sweep(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _load_cli()
    out = tmp_path / "cli-out"
    rc = cli.main([str(sweep), "--max-latency-ms", "1.0", "--min-throughput", "200", "--out", str(out), "-q"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert printed.startswith("Use model=c, pooling=cls,")
    assert "1 job(s) not completed:" in printed and "Killed" in printed
    assert (out / "report.html").is_file() and (out / "wandb_report.json").is_file()
    assert cli.main([str(tmp_path / "empty-does-not-exist")]) == 2


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_multirun_then_report(tmp_path: Path) -> None:
    """A real 2-job Hydra sweep with the callback wired on the command line, then the CLI."""
    sweep = tmp_path / "sweep"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    cmd = [
        sys.executable, "train.py", "-m", "model=tiny_bert", "pooling=mean,cls", "debug=fast", "logger=none",
        f"hydra.sweep.dir={sweep}", "++hydra.callbacks.report._target_=embedlab.report.hydra_callback.ReportCallback",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    from_callback = json.loads((sweep / "report" / "report.json").read_text())
    assert from_callback["counts"] == {"ok": 2}
    assert from_callback["sweep_id"] == "sweep-" + "_".join(
        sweep.resolve().parts[-2:]
    )  # = embedlab.run.sweep_id()

    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "report.py", str(sweep), "--out", str(out), "--min-throughput", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "report.json").read_text())
    assert [r["pooling"] for r in summary["rows"]] != [] and len(summary["rows"]) == 2
    assert {r["pooling"] for r in summary["rows"]} == {"mean", "cls"}
    assert all(r["quality_key"] == "val/lee/spearman_cosine" and r["n_seeds"] == 1 for r in summary["rows"])
    (rec,) = summary["recommendations"]
    assert rec["met_budget"] and rec["choice"].startswith("model=tiny_bert")
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_wandb_report_is_not_published_offline(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb_workspaces")
    from embedlab.report.wandb_report import build_wandb_report, publish_wandb_report, wandb_report_spec

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    obj = build_wandb_report(
        wandb_report_spec(build_report(sweep, running_window_s=0))
    )  # no entity: no API call
    assert obj.entity == "" and obj.project == "embedlab"
    assert publish_wandb_report(obj, mode="auto") is None
