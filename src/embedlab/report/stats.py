"""Sampling noise in the report: each row's 95% bootstrap interval, and which rows are statistically
tied with their dataset's best (paired test on the same queries or pairs, Holm-corrected).

Every job saves its per-query (retrieval) or per-pair (STS) values (``tasks/uncertainty.py``); a row
reads those of its quality key. Retrieval: Fisher's paired randomization test on the per-query metric
(seed means per query when a row has several seeds). STS: paired bootstrap of the correlation
difference, resampling pairs, on the row's first seed's predictions.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedlab.eval.significance import (
    correlation_interval,
    correlation_test,
    holm,
    mean_interval,
    randomization_test,
)
from embedlab.report.scan import JobRecord
from embedlab.tracking.per_query import PER_QUERY_FILE, read_per_query

log = logging.getLogger(__name__)

ALPHA = 0.05  # family-wise error rate of the "tied with the best" verdicts of one dataset
CORRELATIONS = {"spearman_cosine": "spearman", "pearson_cosine": "pearson"}


@dataclass
class Units:
    """One row's per-query metric values, or per-pair predictions with their gold scores (STS)."""

    values: dict[str, float]
    gold: dict[str, float] | None = None  # STS only
    method: str | None = None  # STS: "spearman" | "pearson"
    seed: int = 0

    @property
    def kind(self) -> str:
        return "pairs" if self.gold is not None else "queries"

    def interval(self) -> tuple[float, float]:
        ids = sorted(self.values)
        v = np.array([self.values[i] for i in ids])
        if self.gold is None:
            iv = mean_interval(v, seed=self.seed)
        else:
            g = np.array([self.gold[i] for i in ids])
            iv = correlation_interval(g, v, self.method or "spearman", seed=self.seed)
        return iv.low, iv.high


def load_units(jobs: list[JobRecord], key: str | None, tag: str) -> Units | None:
    """Per-unit values of ``key`` (``split/dataset/metric<tag>``) from the jobs' per-query files;
    None when a job has none (results written before intervals existed, or a val-split key)."""
    if not jobs or key is None or key.count("/") < 2:
        return None
    split, _, metric = key.split("/", 2)
    metric = metric[: len(metric) - len(tag)] if tag and metric.endswith(tag) else metric
    files = [Path(j.path) / PER_QUERY_FILE for j in jobs]
    if not all(f.is_file() for f in files):
        return None
    seed = jobs[0].seed or 0
    if metric in CORRELATIONS:  # STS: the first seed's predictions (an average would be an ensemble)
        gold, predicted = read_per_query(files[0], tag, ("gold", "predicted"), split)
        return Units(predicted, gold, CORRELATIONS[metric], seed) if len(predicted) > 1 else None
    runs = [read_per_query(f, tag, (metric,))[0] for f in files]
    shared = set(runs[0]).intersection(*runs[1:])
    values = {q: float(np.mean([r[q] for r in runs])) for q in shared}
    return Units(values, seed=seed) if len(values) > 1 else None


def paired_p(best: Units, other: Units) -> tuple[float, int]:
    """Two-sided p-value of ``other`` vs ``best`` on the units both have, and how many."""
    ids = sorted(set(best.values) & set(other.values))
    a = np.array([best.values[i] for i in ids])
    b = np.array([other.values[i] for i in ids])
    if best.gold is None or other.gold is None:
        return randomization_test(a, b, seed=best.seed), len(ids)
    gold = np.array([best.gold[i] for i in ids])
    return correlation_test(gold, a, b, best.method or "spearman", seed=best.seed), len(ids)


def mark_ties(ranked: list) -> None:
    """Set ``ci_low/ci_high``, ``p_value``, ``p_holm``, ``tied`` and ``n_units`` on a dataset's ranked
    rows (best first). Rows without per-unit values keep ``tied=None`` (not tested)."""
    for row in ranked:
        if row.units is not None:
            row.ci_low, row.ci_high = row.units.interval()
            row.n_units = len(row.units.values)
    best = ranked[0] if ranked and ranked[0].units is not None else None
    if best is None:
        return
    best.tied, best.p_value, best.p_holm = True, math.nan, math.nan
    others = [r for r in ranked[1:] if r.units is not None and r.units.kind == best.units.kind]
    results = [paired_p(best.units, r.units) for r in others]
    for row, (p, n), adjusted in zip(others, results, holm([p for p, _ in results]), strict=True):
        row.p_value, row.p_holm, row.n_units = p, float(adjusted), n
        row.tied = bool(adjusted >= ALPHA)
    log.info(
        "%s: %d of %d rows tied with the best (%s, Holm, alpha %.2f)",
        best.data,
        1 + sum(r.tied for r in others),
        len(ranked),
        "paired bootstrap" if best.units.gold is not None else "paired randomization",
        ALPHA,
    )
