"""Bootstrap intervals and paired tests: a hand-checked case, and p-values against ranx."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from embedlab.eval.retrieval import retrieval_metrics
from embedlab.eval.significance import (
    correlation_interval,
    correlation_test,
    holm,
    mean_interval,
    randomization_test,
)


def test_mean_interval_hand_checked():
    # Two values: every resample is (0,0), (0,1), (1,0) or (1,1) -> means 0, .5, 1 with
    # probabilities 1/4, 1/2, 1/4, so the 95% percentile interval is [0, 1] around 0.5.
    iv = mean_interval([0.0, 1.0], resamples=4000, seed=3)
    assert iv.value == 0.5 and iv.low == 0.0 and iv.high == 1.0
    assert (iv.n, iv.resamples, iv.level, iv.seed) == (2, 4000, 0.95, 3)
    # Constant values have a zero-width interval; the same seed gives the same interval.
    assert mean_interval([0.3] * 50).low == pytest.approx(0.3)
    rng = np.random.default_rng(0)
    v = rng.random(300)
    assert mean_interval(v, seed=7) == mean_interval(v, seed=7)


def test_mean_interval_matches_normal_theory():
    # 300 queries of a 0/1 metric at p = 0.6: the 95% interval half-width is about
    # 1.96 * sqrt(.6 * .4 / 300) = 0.055; the bootstrap must agree to a few thousandths.
    v = (np.random.default_rng(1).random(300) < 0.6).astype(float)
    iv = mean_interval(v, resamples=4000)
    half = 1.96 * np.sqrt(v.mean() * (1 - v.mean()) / 300)
    assert iv.low < v.mean() < iv.high
    assert (iv.high - iv.low) / 2 == pytest.approx(half, abs=0.006)


def test_correlation_interval_brackets_scipy():
    rng = np.random.default_rng(2)
    gold = rng.random(400) * 5
    pred = gold + rng.normal(0, 1.5, 400)
    s, p = correlation_interval(gold, pred, "spearman"), correlation_interval(gold, pred, "pearson")
    assert s.value == pytest.approx(spearmanr(gold, pred).statistic)
    assert p.value == pytest.approx(pearsonr(gold, pred).statistic)
    assert s.low < s.value < s.high and 0.03 < s.high - s.low < 0.2
    with pytest.raises(ValueError, match="spearman"):
        correlation_interval(gold, pred, "kendall")
    with pytest.raises(ValueError, match="NaN"):
        mean_interval([0.1, float("nan")])


def _runs(seed: int, n_queries: int = 120, n_docs: int = 40):
    """Two systems' rankings of the same judged queries, the second a little better."""
    rng = np.random.default_rng(seed)
    qrels = {f"q{i}": {f"d{j}": 1 for j in rng.choice(n_docs, 3, replace=False)} for i in range(n_queries)}
    runs = []
    for noise in (1.0, 0.8):
        run = {}
        for q, rel in qrels.items():
            scores = rng.random(n_docs) * noise
            for d in rel:
                scores[int(d[1:])] += 0.35
            run[q] = {f"d{j}": float(s) for j, s in enumerate(scores)}
        runs.append(run)
    return qrels, runs


@pytest.mark.parametrize("seed", [0, 1])
def test_randomization_p_values_match_ranx(seed):
    ranx = pytest.importorskip("ranx")
    qrels, (run_a, run_b) = _runs(seed)
    report = ranx.compare(
        ranx.Qrels(qrels),
        [ranx.Run(run_a, name="a"), ranx.Run(run_b, name="b")],
        metrics=["ndcg@10"],
        stat_test="fisher",
        n_permutations=20_000,
        random_seed=seed,
    )
    ranx_p = report.to_dict()["a"]["comparisons"]["b"]["ndcg@10"]
    docs = [f"d{j}" for j in range(40)]
    per_query = []
    for run in (run_a, run_b):
        ranked = [sorted(((int(d[1:]), s) for d, s in run[q].items()), key=lambda t: -t[1]) for q in qrels]
        m = retrieval_metrics(
            list(qrels), docs, qrels, ks=(10,), ranked=ranked, ndcg_gain="graded", per_query=True
        )
        per_query.append([m.per_query[q]["ndcg@10"] for q in qrels])
    ours = randomization_test(*per_query, permutations=20_000, seed=seed)
    assert 0.0 < ranx_p < 0.5  # the fixture must not make the comparison trivial
    assert ours == pytest.approx(ranx_p, abs=0.01)


def test_correlation_test_paired():
    rng = np.random.default_rng(4)
    gold = rng.random(500)
    good, bad = gold + rng.normal(0, 0.2, 500), gold + rng.normal(0, 0.6, 500)
    assert correlation_test(gold, good, bad, resamples=2000) < 0.01
    assert correlation_test(gold, good, good, resamples=2000) == 1.0
    same_quality = gold + rng.normal(0, 0.2, 500)
    assert correlation_test(gold, good, same_quality, resamples=2000) > 0.05


def test_holm_hand_checked():
    # sorted p: .01 *3 = .03, .02 *2 = .04, .04 *1 = .04 (monotone), back in input order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]).shape == (0,)
