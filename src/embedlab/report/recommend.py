"""Ranked cells -> a recommendation under a stated budget, and the whole report in one object.

A decision needs the best quality that meets every cost limit, the limits that excluded
better cells, whether seeds can separate the pick from the runner-up, and the failed
jobs in plain view. :func:`build_report` runs scan -> cells -> recommend once; the
renderers only format the :class:`SweepReport` it returns.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedlab.report.cells import CellRow, build_table, dataset_of, encoder_key, finite
from embedlab.report.scan import (
    AXES,
    RUNNING_WINDOW_S,
    JobRecord,
    Mode,
    Planner,
    get,
    scan,
    sweep_group_for_dir,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """Cost limits a recommendation must meet; ``None`` means no limit on that cost."""

    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None

    @property
    def empty(self) -> bool:
        return self.max_latency_ms is None and self.min_throughput is None and self.max_memory_mb is None

    def _checks(self, row: CellRow | None = None) -> list[tuple[str, float, float, bool, str]]:
        """(name, value, limit, value must be <= limit, unit) for each given limit."""
        limits = (("p50 latency", "latency_ms", self.max_latency_ms, True, "ms"),
                  ("encode throughput", "throughput", self.min_throughput, False, "texts/s"),
                  ("index memory", "memory_mb", self.max_memory_mb, True, "MB"))  # fmt: skip
        return [(name, getattr(row, attr, math.nan), limit, at_most, unit)
                for name, attr, limit, at_most, unit in limits if limit is not None]  # fmt: skip

    def describe(self) -> str:
        names = {"p50 latency": "p50 query latency", "index memory": "index memory"}
        parts = [f"{names.get(n, n)} {'<=' if at_most else '>='} {limit:g} {unit}"
                 for n, _, limit, at_most, unit in self._checks()]  # fmt: skip
        return ", ".join(parts) if parts else "no budget"

    def violations(self, row: CellRow) -> list[str]:
        """Why ``row`` misses the budget (empty when it meets it). An unmeasured cost
        cannot be shown to meet its limit, so it counts as a miss."""
        out = []
        for name, value, limit, at_most, unit in self._checks(row):
            if not math.isfinite(value):
                out.append(f"{name} not measured")
            elif (value > limit) if at_most else (value < limit):
                out.append(f"{name} {value:.3g} {unit} {'>' if at_most else '<'} {limit:g} {unit}")
        return out

    def shortfall(self, row: CellRow) -> float:
        """Sum of relative misses (0 = meets the budget; inf = a limited cost is unmeasured)."""
        total = 0.0
        for _, value, limit, at_most, _ in self._checks(row):
            if not math.isfinite(value):
                return math.inf
            total += max(0.0, (value - limit) if at_most else (limit - value)) / max(abs(limit), 1e-12)
        return total


@dataclass
class Recommendation:
    """The pick for one dataset, and the paragraph that justifies it."""

    data: str
    budget: Budget
    choice: CellRow | None
    met_budget: bool
    n_candidates: int
    n_meeting: int
    text: str


def _fmt(v: float, spec: str = ".4f") -> str:
    return format(v, spec) if math.isfinite(v) else "n/a"


def _quality_text(r: CellRow) -> str:
    s = f"{r.quality_key} = {_fmt(r.quality_mean)}"
    if math.isfinite(r.quality_std):
        s += f" ± {_fmt(r.quality_std)}"
    return s + f" over {r.n_seeds} seed{'s' if r.n_seeds != 1 else ''}"


def _cost_text(r: CellRow) -> str:
    parts = []
    if math.isfinite(r.throughput):
        shared = " (measured by a sibling job)" if r.throughput_shared else ""
        parts.append(f"encodes {r.throughput:.0f} texts/s{shared}")
    if math.isfinite(r.memory_mb):
        parts.append(f"index {r.memory_mb:.1f} MB")
    if math.isfinite(r.latency_ms):
        parts.append(f"p50 latency {r.latency_ms:.3g} ms")
    if math.isfinite(r.bytes_per_vector):
        parts.append(f"{r.bytes_per_vector:.0f} bytes/vector")
    return "; ".join(parts) if parts else "no cost measured"


def _pick_text(pick: CellRow, best: CellRow, meeting: list[CellRow], n: int, budget: Budget) -> str:
    text = (
        f"Use {pick.describe()}: {_quality_text(pick)}, the best of the {len(meeting)} of {n} "
        f"configurations that meet the budget ({budget.describe()}). Cost: {_cost_text(pick)}."
    )
    if budget.empty:
        text += " No budget was given, so this is the best quality regardless of cost."
    if pick is not best:
        text += f" The best overall, {best.label} ({_fmt(best.quality_mean)}), is excluded: {'; '.join(budget.violations(best))}."
    if len(meeting) > 1:
        runner = meeting[1]
        spread = max(finite([pick.quality_std, runner.quality_std]), default=math.nan)
        if math.isfinite(spread) and abs(pick.quality_mean - runner.quality_mean) <= spread:
            text += (
                f" The runner-up, {runner.label} ({_fmt(runner.quality_mean)}; {_cost_text(runner)}), "
                f"is within one seed standard deviation ({_fmt(spread)}): the seeds cannot separate "
                f"the two, so choose between them on cost."
            )
    if pick.pareto_throughput is False and pick.pareto_memory is False:
        text += " Note: another configuration is at least as good and cheaper on each measured cost axis."
    return text


def recommend(rows: Sequence[CellRow], budget: Budget | None = None) -> list[Recommendation]:
    """The best-quality cell meeting every limit of ``budget``, per dataset.

    Quality is the seed mean; ties go to the higher throughput (the ranking order). When
    nothing meets the budget, the closest cell (smallest summed relative miss, then best
    quality) is named with what it misses, and ``choice`` is left empty.
    """
    budget = budget or Budget()
    out = []
    for data in dict.fromkeys(r.data for r in rows):
        candidates = sorted(
            (r for r in rows if r.data == data and r.rank is not None), key=lambda r: r.rank or 0
        )
        if not candidates:
            text = f"No completed job reported a quality metric for {data}; nothing to recommend."
            out.append(Recommendation(data, budget, None, False, 0, 0, text))
            continue
        meeting = [r for r in candidates if not budget.violations(r)]
        if meeting:
            text = _pick_text(meeting[0], candidates[0], meeting, len(candidates), budget)
            out.append(Recommendation(data, budget, meeting[0], True, len(candidates), len(meeting), text))
            continue
        closest = min(
            candidates,
            key=lambda r: (budget.shortfall(r), -r.quality_mean if r.mode == "max" else r.quality_mean),
        )
        text = (
            f"Nothing meets the budget ({budget.describe()}) for {data}: none of the {len(candidates)} "
            f"configurations satisfies every limit. Closest is {closest.describe()} ({_quality_text(closest)}; "
            f"{_cost_text(closest)}), which misses by: {'; '.join(budget.violations(closest))}. "
            f"Relax that limit, or sweep cheaper options (smaller dimension, int8/binary embeddings, an IVF or HNSW index)."
        )
        out.append(Recommendation(data, budget, None, False, len(candidates), 0, text))
    return out


@dataclass
class EncodePasses:
    """How many times a corpus was encoded, against how many times it had to be.

    A pass is a completed job with ``n_texts_encoded > 0`` for a dataset, summed over
    datasets. With the embedding cache, every (model, pooling, weights) needs one pass
    per dataset; dimension, quantization and index cells should reuse it.
    """

    passes: int
    encoder_combos: int
    needed: int
    per_dataset: dict[str, int]
    measured: bool

    @property
    def held(self) -> bool:
        return self.measured and self.passes <= self.needed

    def summary(self) -> str:
        if not self.measured:
            return "Encode passes: not measured (no completed job reports n_texts_encoded; STS jobs always encode)."
        per = ", ".join(f"{d}: {n}" for d, n in sorted(self.per_dataset.items()))
        verdict = (
            "held: encode once, score many"
            if self.held
            else f"did not hold: {self.passes - self.needed} extra pass(es) (cache disabled, cleared, or keyed differently?)"
        )
        return (
            f"Encode passes: {self.passes} corpus encode pass(es) ({per}) for {self.encoder_combos} distinct "
            f"(model, pooling, weights) combination(s), {self.needed} needed over the datasets: {verdict}."
        )


def count_encode_passes(jobs: Sequence[JobRecord]) -> EncodePasses:
    per_dataset: dict[str, int] = defaultdict(int)
    needed: set[tuple[str, ...]] = set()
    for job in (j for j in jobs if j.ok):
        for key, value in job.metrics.items():
            if key.endswith("/n_texts_encoded"):
                ds = dataset_of(key) or "?"
                needed.add((*encoder_key(job)[:3], ds))
                per_dataset[ds] += int(math.isfinite(value) and value > 0)
    combos = {k[:3] for k in needed}
    return EncodePasses(sum(per_dataset.values()), len(combos), len(needed), dict(per_dataset), bool(needed))


@dataclass
class SweepReport:
    """Everything the renderers need, computed once."""

    sources: list[Path]
    sweep_id: str
    metric: str | None
    budget: Budget
    jobs: list[JobRecord]
    rows: list[CellRow]
    recommendations: list[Recommendation]
    encode: EncodePasses
    wandb: dict[str, Any] = field(default_factory=dict)

    @property
    def problem_jobs(self) -> list[JobRecord]:
        return [j for j in self.jobs if not j.ok]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(j.status for j in self.jobs))

    @property
    def metric_description(self) -> str:
        keys = sorted({r.quality_key for r in self.rows if r.quality_key})
        how = f"--metric {self.metric}" if self.metric else "each job's monitor"
        return f"{how}; keys used: {', '.join(keys) if keys else 'none'}"

    def summary_lines(self) -> list[str]:
        """The report's header lines (Markdown, HTML, the W&B Report)."""
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))
        rows = self.rows
        shared = ", ".join(
            f"{a}={rows[0].axes.get(a)}" for a in AXES if len({r.axes.get(a) for r in rows}) == 1
        )
        return [
            f"Sources: {', '.join(str(s) for s in self.sources)}",
            *([f"Shared by every cell: {shared}"] if shared and len(rows) > 1 else []),
            f"Jobs: {len(self.jobs)} ({counts}); configuration cells: {len(rows)}",
            f"Quality: {self.metric_description} (variant keys follow each job's dimension / precision / index)",
            f"Budget: {self.budget.describe()}",
        ]

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable report (report.json): what a later script or W&B summary needs."""
        recs = [{"data": r.data, "met_budget": r.met_budget, "choice": r.choice.describe() if r.choice else None,
                 "n_candidates": r.n_candidates, "n_meeting": r.n_meeting, "text": r.text}
                for r in self.recommendations]  # fmt: skip
        encode = {**asdict(self.encode), "held": self.encode.held}
        return {"sweep_id": self.sweep_id, "sources": [str(s) for s in self.sources], "metric": self.metric,
                "budget": asdict(self.budget), "counts": self.counts, "recommendations": recs, "encode": encode,
                "rows": [r.record() for r in self.rows], "jobs": [j.record() for j in self.jobs]}  # fmt: skip


def sweep_id_for(jobs: Sequence[JobRecord], sources: Sequence[Path]) -> str:
    """The sweep's W&B group: the jobs' ``logger.wandb.group`` when they set one and agree,
    else the group the runner derives from the sweep folder (sweep_group_for_dir)."""
    groups = {get(j.config, "logger", "wandb", "group") for j in jobs if j.config}
    groups.discard(None)
    if len(groups) == 1:
        return str(groups.pop())
    return sweep_group_for_dir(sources[0]) if sources else "sweep"


def wandb_target(jobs: Sequence[JobRecord]) -> dict[str, Any]:
    """Project, entity and mode of the jobs' W&B logger (defaults when none logged to W&B)."""
    for j in jobs:
        w = get(j.config, "logger", "wandb")
        if isinstance(w, dict):
            return {"project": w.get("project") or "embedlab", "entity": w.get("entity"),
                    "mode": w.get("mode") or "auto"}  # fmt: skip
    return {"project": "embedlab", "entity": None, "mode": "auto"}


def build_report(
    paths: str | Path | Sequence[str | Path],
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    budget: Budget | None = None,
    variant_aware: bool = True,
    running_window_s: float = RUNNING_WINDOW_S,
    planner: Planner | None = None,
) -> SweepReport:
    """Scan, rank, mark Pareto fronts, recommend and count encode passes in one call.
    ``planner`` expands a sweep's plan so that its never-started jobs are listed."""
    sources = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    jobs = scan(sources, running_window_s=running_window_s, planner=planner)
    if not jobs:
        raise FileNotFoundError(
            f"no job folders (results.json or .hydra/) under {', '.join(map(str, sources))}"
        )
    budget = budget or Budget()
    rows = build_table(jobs, metric, mode=mode, variant_aware=variant_aware)
    report = SweepReport(sources, sweep_id_for(jobs, sources), metric, budget, jobs, rows,
                         recommend(rows, budget), count_encode_passes(jobs), wandb_target(jobs))  # fmt: skip
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items()))
    log.info("Report over %d jobs (%s), %d configuration cells", len(jobs), counts, len(rows))
    return report
