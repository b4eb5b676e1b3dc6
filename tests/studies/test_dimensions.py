"""Concentration of distances: pairwise distances match scipy, Gaussian vectors concentrate
as theory says, and real structure keeps more contrast than noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from embedlab.studies.dimensions import (
    RANDOM_SOURCE,
    dimension_study,
    distance_stats,
    gaussian_points,
    pairwise_distances,
    relative_contrast,
)
from embedlab.viz.plots import plot_distance_histograms


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_pairwise_distances_match_scipy(metric: str) -> None:
    x = np.random.default_rng(1).normal(size=(40, 16)) + 0.3
    np.testing.assert_allclose(pairwise_distances(x, metric), pdist(x, metric=metric), atol=1e-9)


def test_relative_contrast_by_hand() -> None:
    x = np.array([[0.0], [1.0], [3.0]])
    d = np.abs(x - x.T)
    # point 0: (3 - 1) / 1, point 1: (2 - 1) / 1, point 2: (3 - 2) / 2
    assert relative_contrast(d) == pytest.approx((2 + 1 + 0.5) / 3)
    dup = np.abs(np.array([[0.0], [0.0], [2.0]]) - np.array([[0.0, 0.0, 2.0]]))
    assert relative_contrast(dup) == pytest.approx(0.0)  # points 0, 1 skipped; point 2: (2 - 2) / 2


def test_gaussian_distances_concentrate_as_dimension_grows() -> None:
    rows = {d: distance_stats(gaussian_points(300, d, seed=0), "euclidean")[0] for d in (16, 64, 256)}
    assert rows[16].relative_contrast > rows[64].relative_contrast > rows[256].relative_contrast
    # |x - y|^2 of standard normals is 2 chi2(d): mean 2d, variance 8d, so the distance has
    # mean ~ sqrt(2d) and (delta method) std ~ sqrt(8d) / (2 sqrt(2d)) = 1, whatever d is
    for d, s in rows.items():
        assert s.mean == pytest.approx(np.sqrt(2 * d), rel=0.05)
        assert s.std == pytest.approx(1.0, rel=0.1)
    assert rows[16].cv / rows[256].cv == pytest.approx(4.0, rel=0.15)  # cv ~ 1 / sqrt(2 d)


def test_study_table_and_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(120, 4)) @ rng.normal(size=(4, 96))  # structure: 4 latent dimensions
    study = dimension_study({"lowrank": low_rank}, dims=(None, 32, 200))
    cells = {(s.source, s.dim, s.metric): s for s in study.stats}
    assert set(cells) == {
        (src, d, m) for src in ("lowrank", RANDOM_SOURCE) for d in (96, 32) for m in ("cosine", "euclidean")
    }  # fmt: skip  (200 > 96: skipped)
    for d in (96, 32):
        real, noise = cells[("lowrank", d, "euclidean")], cells[(RANDOM_SOURCE, d, "euclidean")]
        assert real.relative_contrast > noise.relative_contrast and real.cv > noise.cv
    assert len(study.distances[("lowrank", 96, "cosine")]) == 120 * 119 // 2
    assert study.rows()[0]["source"] == "lowrank"
    png = plot_distance_histograms(study, tmp_path / "hist.png", title="t")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="reserved"):
        dimension_study({RANDOM_SOURCE: low_rank})
    with pytest.raises(ValueError, match="N >= 3"):
        distance_stats(np.ones((2, 3)), "cosine")
