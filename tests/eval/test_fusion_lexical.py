"""Fusion equals ranx's fuse; BM25 ranks like bm25s and records its settings."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.errors import ConfigError
from embedlab.eval.fusion import choose_weight, convex, rrf
from embedlab.eval.lexical import BM25Settings, bm25_rank


def _ranking(rng: np.random.Generator, n_queries: int, n_docs: int, depth: int):
    scores = rng.normal(size=(n_queries, n_docs))
    ids = np.argsort(-scores, axis=1)[:, :depth]
    return np.take_along_axis(scores, ids, 1), ids


def _as_ranx_run(ranking, name):
    import ranx

    scores, ids = ranking
    return ranx.Run(
        {
            f"q{q}": {f"d{d}": float(s) for d, s in zip(ids[q], scores[q], strict=True) if d >= 0}
            for q in range(len(ids))
        },
        name=name,
    )


@pytest.mark.parametrize(
    ("method", "norm", "params"),
    [
        ("rrf", None, {"k": 60}),
        ("wsum", "min-max", {"weights": [0.3, 0.7]}),
        ("wsum", "zmuv", {"weights": [0.6, 0.4]}),
    ],
)
def test_fused_scores_equal_ranx(method, norm, params):
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(5)
    dense, lexical = _ranking(rng, 30, 50, 20), _ranking(rng, 30, 50, 15)
    lexical[1][3, 10:] = -1  # a short ranking: padding must not count
    if method == "rrf":
        ours = rrf([dense, lexical], k=60, depth=35)
    else:
        ours = convex(
            [dense, lexical], params["weights"], norm="min-max" if norm == "min-max" else "z-score", depth=35
        )
    runs = [_as_ranx_run(dense, "dense"), _as_ranx_run(lexical, "lexical")]
    theirs = ranx.fuse(runs, norm=norm, method=method, params=params).to_dict()
    for q in range(30):
        got = {f"d{d}": s for s, d in zip(ours[0][q], ours[1][q], strict=True) if d >= 0}
        assert got.keys() == theirs[f"q{q}"].keys()
        for d, s in got.items():
            assert s == pytest.approx(theirs[f"q{q}"][d], abs=1e-9)
        assert list(ours[0][q][: len(got)]) == sorted(got.values(), reverse=True)


def test_choose_weight_prefers_the_better_run():
    rng = np.random.default_rng(6)
    good, noise = _ranking(rng, 20, 30, 10), _ranking(rng, 20, 30, 10)

    def overlap_with_good(r):  # a score that only the first run can satisfy
        return float(np.mean([len(set(a[:5]) & set(b[:5])) for a, b in zip(r[1], good[1], strict=True)]))

    w, tried = choose_weight(good, noise, overlap_with_good, norm="min-max", grid=11)
    assert w == 1.0 and len(tried) == 11 and tried[0.0] < tried[1.0]
    with pytest.raises(ValueError, match="two rankings"):
        rrf([good])


def test_bm25_ranks_like_bm25s_and_handles_odd_queries(caplog):
    docs = [
        "the cat sat on the mat",
        "dogs chase cats",
        "a treatise on quantum chromodynamics",
        "cats and dogs",
    ]
    scores, ids = bm25_rank(docs, ["cat", "quantum physics", "zzzz unknownword"], k=6)
    assert ids.shape == (3, 6) and (ids[:, 4:] == -1).all()  # k > corpus pads
    assert set(ids[0, :3]) == {0, 1, 3}  # stemming: cat ~ cats
    assert ids[1, 0] == 2 and scores[1, 0] > 0
    assert (scores[2, :4] == 0).all() and "match no indexed term" in caplog.text
    assert list(ids[2, :4]) == [0, 1, 2, 3]  # all-zero scores tie: lower index first
    with pytest.raises(ConfigError, match="k1"):
        BM25Settings(k1=-1)
