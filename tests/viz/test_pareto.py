"""Pareto plots people can read: axes fill the figure, numbered points never overlap, everything stays
inside the frame, log scale where the cost spans decades; the interactive version hovers the full
configuration."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from embedlab.report.cells import pareto_front
from embedlab.viz.pareto import MAX_KEYED, ParetoPoint, keyed_points, pareto_figure, pareto_html, plot_pareto

AXES = {"model": ("minilm", "mpnet", "bge"), "pooling": ("mean", "cls", "max"), "dim": ("full", "256", "128")}


def sweep_points(seed: int = 0) -> list[ParetoPoint]:
    """81 cells (as the model comparison's panel), costs spanning three decades, close clusters."""
    rng = random.Random(seed)
    raw = []
    for (m, p, d), q in itertools.product(itertools.product(*AXES.values()), ("none", "int8", "binary")):
        cost = rng.choice([15.2, 7.6, 1.9, 0.47, 0.08]) * rng.uniform(0.97, 1.03)
        raw.append((cost, rng.uniform(0.0, 0.66), f"model={m}, pooling={p}, dimension={d}, quantization={q}"))
    front = pareto_front([(c, q) for c, q, _ in raw], maximize=(False, True))
    top = max(q for _, q, _ in raw)
    return [
        ParetoPoint(c, q, q - 0.02, q + 0.02, f, label, tied=q > top - 0.04, best=q == top, detail=label)
        for (c, q, label), f in zip(raw, front, strict=True)
    ]


def test_pareto_png_is_readable(tmp_path: Path) -> None:
    pts = sweep_points()
    panels = {"scifact: quality vs memory": pts, "nfcorpus: quality vs memory": pts[::3]}
    fig = pareto_figure(panels, xlabel="index memory (MB)", ylabel={}, larger_is_better=False)
    renderer = fig.canvas.get_renderer()
    fig_box = fig.bbox
    for ax, pts_ in zip(fig.axes, panels.values(), strict=True):
        assert ax.get_position().width > 0.38  # each of two panels fills most of its half
        assert ax.get_xscale() == "log"  # 0.08 .. 15 MB
        keyed = keyed_points(pts_)
        assert {p for p in pts_ if p.on_front or p.best} <= set(keyed) and len(keyed) <= MAX_KEYED
        numbers = [t for t in ax.texts if t.get_text().isdigit()]
        assert sorted(int(t.get_text()) for t in numbers) == list(range(1, len(keyed) + 1))
        boxes = [t.get_window_extent(renderer) for t in numbers]
        assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
        key = next(t for t in ax.texts if "\n" in t.get_text() or t.get_text().startswith(" 1"))
        assert "model=" in key.get_text() and len(key.get_text().splitlines()) == len(keyed)
    for text in (t for ax in fig.axes for t in ax.texts):
        box = text.get_window_extent(renderer)
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0, text.get_text()[:40]
    out = plot_pareto(panels, tmp_path / "p.png", xlabel="MB", ylabel={}, larger_is_better=False)
    assert out is not None and out.read_bytes()[:4] == b"\x89PNG"
    assert (
        plot_pareto({"empty": []}, tmp_path / "none.png", xlabel="", ylabel={}, larger_is_better=True) is None
    )


def test_linear_scale_when_costs_are_close() -> None:
    pts = [ParetoPoint(c, 0.5 + c / 100, 0.4, 0.6, True, f"model={c}") for c in (10.0, 12.0, 15.0)]
    fig = pareto_figure({"a": pts}, xlabel="x", ylabel={}, larger_is_better=True)
    assert fig.axes[0].get_xscale() == "linear"


def test_interactive_version_hovers_the_full_configuration() -> None:
    pts = [
        p._replace(detail=p.label + ", data=scifact\nndcg@10 = 0.5, 95% CI [0.4, 0.6]")
        for p in sweep_points()
    ]
    div = pareto_html(
        {"scifact": pts},
        xlabel="MB",
        ylabel={"scifact": "ndcg@10"},
        larger_is_better=False,
        include_plotlyjs=False,
    )
    assert div is not None and "Plotly.newPlot(" in div and "plotly.js v" not in div
    hover = "model=minilm, pooling=mean, dimension=full, quantization=none, data=scifact\\u003cbr\\u003e"
    assert hover in div  # plotly escapes "<" inside its JSON
    assert "95% CI [0.4, 0.6]" in div and '"type":"log"' in div
    assert pareto_html({}, xlabel="", ylabel={}, larger_is_better=True, include_plotlyjs=True) is None
