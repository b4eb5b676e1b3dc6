"""The decision report end to end: a sweep with BM25 and a hybrid writes per-query files, run files
and intervals; BM25 runs once; the report marks the tied set and states its recommendation rule."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedlab.report.cells import CellRow
from embedlab.report.recommend import recommend
from embedlab.report.stats import Units, mark_ties

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("decision") / "sweep"
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "-m", "model=bm25,minilm", "pooling=mean,cls"]
    cmd += ["fusion=none,rrf", "data=retrieval_mock", "logger=none", f"hydra.sweep.dir={out}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sweep: 8 jobs -> 5 distinct (model=bm25 has no pooling" in done.stderr + done.stdout
    return out


def test_bm25_runs_once_and_every_job_records_its_noise(sweep: Path) -> None:
    jobs = sorted(p for p in sweep.iterdir() if (p / "results.json").is_file())
    assert sum("model=bm25" in p.name for p in jobs) == 1 and len(jobs) == 5
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        files = results["meta"]["files"]
        assert (job / files["per_query"]).is_file() and (job / files["run"]).is_file()
        iv = results["intervals"]["test/mock/ndcg@10" + files["run_cell"]]
        assert iv["low"] <= iv["value"] <= iv["high"] and iv["resamples"] == 1000 and iv["n"] == 4
        trec = (job / "run.trec").read_text().splitlines()
        assert trec and all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in trec)
        with gzip.open(job / "per_query.csv.gz", "rt") as f:
            assert f.readline().startswith("cell,id,")
    hybrid = next(j for j in jobs if "fusion=rrf" in j.name)
    results = json.loads((hybrid / "results.json").read_text())
    ((fused, parts),) = results["comparisons"].items()
    assert fused == "test/mock/ndcg@10@flat@rrf"
    assert set(parts) == {"test/mock/ndcg@10@flat", "test/mock/ndcg@10@bm25"}
    assert all(0.0 <= p["p_value"] <= 1.0 and p["n"] == 4 for p in parts.values())


def test_report_shows_intervals_ties_and_the_rule(sweep: Path) -> None:
    report = json.loads((sweep / "report" / "report.json").read_text())
    rows = report["rows"]
    assert len(rows) == 5 and sum(r["model"] == "bm25" for r in rows) == 1
    bm25 = next(r for r in rows if r["model"] == "bm25")
    assert bm25["pooling"] == "-" and bm25["fusion"] == "-"
    assert all(r["ci_low"] <= r["quality_mean"] <= r["ci_high"] for r in rows)
    assert rows[0]["tied"] is True and all(r["tied"] in (True, False) for r in rows)
    (rec,) = report["recommendations"]
    assert rec["text"].startswith("Rule: among the 5 of 5 configurations that meet the budget")
    assert "Holm-corrected" in rec["text"] and "recommend the cheapest" in rec["text"]
    md = (sweep / "report" / "report.md").read_text()
    assert "95% CI" in md and "tied with best" in md


def _row(name: str, quality: float, values: np.ndarray, throughput: float) -> CellRow:
    row = CellRow({"model": name, "data": "d"}, (), "max", "test/d/ndcg@10", [quality], [0], [name])
    row.throughput, row.units = throughput, Units({f"q{i}": float(v) for i, v in enumerate(values)})
    return row


def test_the_cheapest_tied_configuration_is_recommended() -> None:
    rng = np.random.default_rng(0)
    best = rng.random(300)
    rows = [
        _row("big", best.mean(), best, throughput=50.0),
        _row("small", best.mean() - 0.002, np.clip(best - 0.002 + rng.normal(0, 0.05, 300), 0, 1), 400.0),
        _row("weak", best.mean() - 0.2, np.clip(best - 0.2, 0, 1), 900.0),
    ]
    for rank, r in enumerate(rows, 1):
        r.rank, r.label = rank, r.axes["model"]
    mark_ties(rows)
    assert [r.tied for r in rows] == [True, True, False]
    assert rows[2].p_holm < 0.05 < rows[1].p_holm and rows[1].n_units == 300
    assert all(r.ci_low < r.quality_mean < r.ci_high for r in rows)
    (rec,) = recommend(rows)
    assert rec.choice is rows[1] and rec.n_tied == 2  # tied with the best and 8x faster to encode
    assert "Nominal best: big" in rec.text and "Runner-up: big" in rec.text
