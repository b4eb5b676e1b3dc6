"""The generic figures experiments/ draw through viz (bars per metric, lines per language)."""

from __future__ import annotations

from pathlib import Path

from embedlab.viz.plots import plot_grouped_bars, plot_lines


def test_grouped_bars_and_lines_write_pngs(tmp_path: Path) -> None:
    bars = [("squad", ["R@1", "R@5"], {"a": [0.5, 0.8], "b": [0.6, 0.9]}), ("qq", ["acc@1"], {"a": [0.4]})]
    assert plot_grouped_bars(bars, tmp_path / "bars.png").stat().st_size > 0
    lines = [
        ("sts", "language", ["en", "de"], {"a": [80.0, float("nan")]}),
        ("bitext", "language", ["de"], {"a": [10.0]}),
    ]
    assert plot_lines(lines, tmp_path / "sub" / "lines.png").stat().st_size > 0
