"""What a task records about sampling noise beside results.json: per-query (retrieval) or per-pair
(STS) values, a TREC run file of the deployed ranking, bootstrap intervals of the headline metrics
(``results.json["intervals"]``) and, for a hybrid, paired tests against its dense and BM25 parts
(``results.json["comparisons"]``). Key scheme: the metric's results key, e.g.
``intervals["test/scifact/ndcg@10@rrf"] = {value, low, high, n, resamples, level, seed}``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.eval.significance import (
    INTERVAL_METRICS,
    correlation_interval,
    per_query_intervals,
    randomization_test,
)
from embedlab.tracking.per_query import PER_QUERY_FILE, RUN_FILE, write_per_query, write_trec_run


def retrieval_record(
    prefix: str, result: Any, data: Any, out_dir: Path, *, headline: str, seed: int
) -> dict[str, Any]:
    """Files, intervals and hybrid comparisons of one retrieval evaluation (``EvalOutput`` fields)."""
    rows = [
        {"cell": tag, "id": q, **values}
        for tag, per_q in result.per_query.items()
        for q, values in per_q.items()
    ]
    metrics = tuple(dict.fromkeys((headline, *INTERVAL_METRICS)))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"per_query": write_per_query(out_dir / PER_QUERY_FILE, _fill(rows)).name}
    deployed = [c.tag for c in result.cells if c.tag in result.rankings]
    run_tag = deployed[-1] if deployed else next(iter(result.rankings), None)
    if run_tag is not None:  # the judged queries only: what trec_eval / ranx score
        judged = np.isin(np.asarray(data.query_ids), list(result.per_query.get(run_tag, {})))
        scores, ids = result.rankings[run_tag]
        judged_ranking = (scores[judged], ids[judged])
        query_ids = [q for q, keep in zip(data.query_ids, judged, strict=True) if keep]
        write_trec_run(
            out_dir / RUN_FILE, query_ids, data.doc_ids, judged_ranking, f"embedlab{run_tag or '@exact'}"
        )
        files |= {"run": RUN_FILE, "run_cell": run_tag}
    intervals = per_query_intervals(result.per_query, metrics, seed=seed)
    record: dict[str, Any] = {
        "intervals": {f"{prefix}/{k}": iv.as_dict() for k, iv in intervals.items()},
        "files": files,
        "comparisons": {},
    }
    fused = next((c for c in result.cells if c.fusion), None)
    if fused is not None:  # the hybrid against each of its parts, on the same queries
        dense_tag, fused = replace(fused, fusion=None).tag, fused.tag
        for part in (dense_tag, "@bm25"):
            p = paired_p(result.per_query[fused], result.per_query[part], headline, seed)
            record["comparisons"].setdefault(f"{prefix}/{headline}{fused}", {})[
                f"{prefix}/{headline}{part}"
            ] = p
    return record


def paired_p(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], metric: str, seed: int) -> dict:
    """Randomization-test p-value of ``metric`` between two systems' per-query values (shared queries)."""
    shared = sorted(q for q in a if q in b and metric in a[q] and metric in b[q])
    x, y = (np.array([v[q][metric] for q in shared]) for v in (a, b))
    p = randomization_test(x, y, seed=seed)
    return {
        "p_value": p,
        "n": len(shared),
        "difference": float(x.mean() - y.mean()),
        "test": "paired randomization",
    }


def sts_record(
    prefix: str, gold: Any, predictions: dict[str, np.ndarray], out_dir: Path, *, seed: int, split: str
) -> dict[str, Any]:
    """Per-pair file rows (returned, written once for all splits) and Spearman / Pearson intervals."""
    intervals = {}
    for tag, predicted in predictions.items():
        for method in ("spearman", "pearson"):
            iv = correlation_interval(gold, predicted, method, seed=seed)
            intervals[f"{prefix}/{method}_cosine{tag}"] = iv.as_dict()
    rows = [
        {"cell": tag, "split": split, "id": i, "gold": float(g), "predicted": float(p)}
        for tag, predicted in predictions.items()
        for i, (g, p) in enumerate(zip(gold, predicted, strict=True))
    ]
    return {"intervals": intervals, "rows": rows}


def _fill(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with one column set (cells report different metrics, e.g. answer hits): missing = empty."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c, "") for c in columns} for r in rows]
