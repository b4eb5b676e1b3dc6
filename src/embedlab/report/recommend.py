"""Ranked cells -> a recommendation under a budget (the best quality meeting every limit, what
excluded better cells, whether seeds separate it from the runner-up) and the whole report in one
object, computed once by :func:`build_report`; renderers only format it."""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedlab.report.cells import (
    COSTS,
    PARETO_COSTS,
    CellRow,
    Cost,
    build_table,
    dataset_of,
    encoder_key,
    ranked_table,
    varying_axes,
)
from embedlab.report.scan import AXES, JobRecord, Mode, get, scan, sweep_group_for_dir

log = logging.getLogger(__name__)

_NOTES = (
    "Quality is the mean over seeds; ± is the sample standard deviation (n-1).",
    "95% CI: percentile bootstrap over the evaluation's queries (or pairs), 1,000 resamples. tied with best: "
    "a paired test against the dataset's best on the same queries (randomization test; STS: paired bootstrap "
    "of the correlation difference) does not reject at alpha 0.05 after Holm's correction.",
    "* throughput measured by a job with the same model and pooling (this one read cached embeddings).",
    "front: on the Pareto front of quality vs that cost (no cell is at least as good and cheaper).",
)


@dataclass(frozen=True)
class Budget:
    """Cost limits a recommendation must meet (``None``: no limit); each field is a ``Cost.limit``."""

    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None

    def limits(self) -> list[tuple[Cost, float]]:
        return [(c, getattr(self, c.limit)) for c in COSTS if c.limit and getattr(self, c.limit) is not None]

    @property
    def empty(self) -> bool:
        return not self.limits()

    def describe(self) -> str:
        parts = [f"{c.name} {'>=' if c.larger_is_better else '<='} {v:g} {c.unit}" for c, v in self.limits()]
        return ", ".join(parts) or "no budget"

    @staticmethod
    def _miss(c: Cost, row: CellRow, limit: float) -> float:  # relative; <= 0: within, NaN: unmeasured
        return (getattr(row, c.attr) - limit) * (-1 if c.larger_is_better else 1) / max(abs(limit), 1e-12)

    def violations(self, row: CellRow) -> list[str]:
        """Why ``row`` misses the budget ([] when it meets it); an unmeasured cost counts as a miss."""
        out = []
        for c, limit in self.limits():
            value, miss = getattr(row, c.attr), self._miss(c, row, limit)
            if not math.isfinite(value):
                out.append(f"{c.name} not measured")
            elif miss > 0:
                out.append(
                    f"{c.name} {value:.3g} {c.unit} {'<' if c.larger_is_better else '>'} {limit:g} {c.unit}"
                )
        return out

    def shortfall(self, row: CellRow) -> float:
        """Sum of relative misses (0 = meets the budget; inf = a limited cost is unmeasured)."""
        misses = [self._miss(c, row, limit) for c, limit in self.limits()]
        return sum(max(0.0, m) if math.isfinite(m) else math.inf for m in misses)


@dataclass
class Recommendation:
    """The pick for one dataset (``choice`` None when nothing meets the budget) and its justification."""

    data: str
    budget: Budget
    choice: CellRow | None
    met_budget: bool
    n_candidates: int
    n_meeting: int
    text: str
    n_tied: int = 0  # meeting the budget and statistically tied with the dataset's best


def _fmt(v: float) -> str:
    return format(v, ".4f") if math.isfinite(v) else "n/a"


def _quality_text(r: CellRow) -> str:
    spread = f" ± {_fmt(r.quality_std)}" if math.isfinite(r.quality_std) else ""
    ci = f" [95% CI {r.ci_low:.4f}, {r.ci_high:.4f}]" if math.isfinite(r.ci_low) else ""
    return f"{r.quality_key} = {_fmt(r.quality_mean)}{ci}{spread} over {r.n_seeds} seed{'s' if r.n_seeds != 1 else ''}"


def cost_order(r: CellRow) -> tuple[float, ...]:
    """Cheapest first: highest encode throughput, then lowest index memory, then lowest p50 latency,
    then smallest stored vector (an unmeasured cost sorts last), then the quality rank."""

    def last(v: float) -> float:
        return v if math.isfinite(v) else math.inf

    costs = (-r.throughput, r.memory_mb, r.latency_ms, r.bytes_per_vector)
    return (*map(last, costs), float(r.rank or 0))


def _cost_text(r: CellRow) -> str:
    measured = [(c, getattr(r, c.attr)) for c in COSTS if math.isfinite(getattr(r, c.attr))]
    parts = [f"{c.name} {v:{c.spec}} {c.unit}" for c, v in measured]
    if r.throughput_shared and math.isfinite(r.throughput):
        parts[0] += " (measured by a sibling job)"
    return "; ".join(parts) or "no cost measured"


def _pick_text(
    pick: CellRow, meeting: list[CellRow], pool: list[CellRow], best: CellRow, n: int, budget: Budget
) -> str:
    """The rule, the pick, the nominal best and the runner-up, in words."""
    units = f"the same {best.n_units} {best.units.kind}" if best.units is not None else "the same queries"
    test = (
        "paired bootstrap"
        if best.units is not None and best.units.gold is not None
        else "paired randomization"
    )
    if best.tied is None:  # no per-query files: the nominal order is all there is
        text = (
            f"Use {pick.describe()}: {_quality_text(pick)}, the best of the {len(meeting)} of {n} configurations that "
            f"meet the budget ({budget.describe()}). No per-query results were found, so sampling noise was not "
            f"tested: this is the nominal best. Cost: {_cost_text(pick)}."
        )
    else:
        text = (
            f"Rule: among the {len(meeting)} of {n} configurations that meet the budget ({budget.describe()}), take those "
            f"statistically tied with the best ({test} test against it on {units}, Holm-corrected, alpha 0.05) "
            "and recommend the cheapest (highest encode throughput, then lowest index memory, then lowest latency, "
            "then smallest stored vector). "
            f"{sum(1 for r in meeting if r.tied)} are tied. Use {pick.describe()}: {_quality_text(pick)}; cost: {_cost_text(pick)}."
        )
        if not any(r.tied for r in meeting):
            text += " No configuration within the budget is tied with the best, so the best within the budget is named."
    if pick is not best:
        why = "; ".join(budget.violations(best)) or "it is not the cheapest of the tied set"
        text += f" Nominal best: {best.label} ({_quality_text(best)}), not picked: {why}."
    runner = next((r for r in pool if r is not pick), None)
    if runner is not None:
        text += f" Runner-up: {runner.label} ({_quality_text(runner)}; {_cost_text(runner)})."
    if budget.empty:
        text += " No budget was given."
    return text


def recommend(rows: Sequence[CellRow], budget: Budget | None = None) -> list[Recommendation]:
    """Per dataset, the best-quality cell meeting every limit (ties: the ranking order); when none
    does, the closest (smallest summed relative miss) is named with its misses and ``choice`` is None."""
    budget = budget or Budget()
    out = []
    for data in dict.fromkeys(r.data for r in rows):
        candidates = sorted(
            (r for r in rows if r.data == data and r.rank is not None), key=lambda r: r.rank or 0
        )
        meeting = [r for r in candidates if not budget.violations(r)]
        tied = [r for r in meeting if r.tied]
        pool = sorted(tied, key=cost_order) if tied else meeting  # untested or none tied: quality order
        if meeting:
            text = _pick_text(pool[0], meeting, pool, candidates[0], len(candidates), budget)
        elif candidates:
            closest = min(candidates, key=lambda r: (budget.shortfall(r), r.rank))
            text = (
                f"Nothing meets the budget ({budget.describe()}) for {data}: none of the {len(candidates)} "
                f"configurations satisfies every limit. Closest is {closest.describe()} ({_quality_text(closest)}; "
                f"{_cost_text(closest)}), which misses by: {'; '.join(budget.violations(closest))}. Relax that "
                "limit, or sweep cheaper options (smaller dimension, int8/binary embeddings, an IVF or HNSW index)."
            )
        else:
            text = f"No completed job reported a quality metric for {data}; nothing to recommend."
        choice = pool[0] if meeting else None
        out.append(
            Recommendation(
                data, budget, choice, bool(meeting), len(candidates), len(meeting), text, len(tied)
            )
        )
    return out


@dataclass
class EncodePasses:
    """Corpus encodes done vs needed: a pass is a completed job with ``n_texts_encoded > 0`` for a
    dataset; with the embedding cache each (model, pooling, weights) needs one pass per dataset."""

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
        extra = f"{self.passes - self.needed} extra pass(es) (cache disabled, cleared, or keyed differently?)"
        return (
            f"Encode passes: {self.passes} corpus encode pass(es) ({per}) for {self.encoder_combos} distinct "
            f"(model, pooling, weights) combination(s), {self.needed} needed over the datasets: "
            + ("held: encode once, score many." if self.held else f"did not hold: {extra}.")
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
    """Everything the renderers need, computed once. ``wandb``: the jobs' ``logger.wandb`` node."""

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
    def counts_text(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in sorted(self.counts.items()))

    def summary_lines(self) -> list[str]:
        varying = varying_axes(self.rows)
        shared = ", ".join(f"{a}={self.rows[0].axes.get(a)}" for a in AXES if a not in varying)
        keys = ", ".join(sorted({r.quality_key for r in self.rows if r.quality_key})) or "none"
        how = f"--metric {self.metric}" if self.metric else "each job's monitor"
        return [
            f"Sources: {', '.join(str(s) for s in self.sources)}",
            *([f"Shared by every cell: {shared}"] if shared and len(self.rows) > 1 else []),
            f"Jobs: {len(self.jobs)} ({self.counts_text}); configuration cells: {len(self.rows)}",
            f"Quality: {how}; keys used: {keys} (variant keys follow each job's dimension / precision / index)",
            f"Budget: {self.budget.describe()}",
        ]

    def sections(self, plots: Mapping[str, Path] | None = None) -> list[tuple[str, Any]]:
        """The report as ``(kind, content)`` blocks, so every renderer shows the same thing: h1, h2, p,
        rec (paragraphs), ul / notes (lines), table ((header, body)), pareto ([(front, PNG or None)])."""
        problems = ["job", "status", "reason"], [[j.name, j.status, j.reason] for j in self.problem_jobs]
        shared = any(r.throughput_shared for r in self.rows)
        return [
            ("h1", f"Sweep report: {self.sweep_id}"),
            ("ul", self.summary_lines()),
            ("h2", "Recommendation"),
            *(("rec", rec.text) for rec in self.recommendations),
            ("h2", "Ranked configurations"),
            ("table", ranked_table(self.rows)),
            ("notes", [n for n in _NOTES if shared or not n.startswith("*")]),
            ("h2", "Pareto fronts"),
            ("pareto", [(front, (plots or {}).get(front)) for front in PARETO_COSTS]),
            ("h2", "Encode once, score many"),
            ("p", self.encode.summary()),
            ("h2", "Failed and unfinished jobs"),
            ("table", problems) if self.problem_jobs else ("p", "None: every job completed."),
        ]

    def as_dict(self) -> dict[str, Any]:
        """The machine-readable report (report.json, the W&B summary run)."""
        keys = ("data", "met_budget", "n_candidates", "n_meeting", "n_tied", "text")
        recs = [
            {**{k: getattr(r, k) for k in keys}, "choice": r.choice.describe() if r.choice else None}
            for r in self.recommendations
        ]
        return {
            "sweep_id": self.sweep_id,
            "sources": [str(s) for s in self.sources],
            "metric": self.metric,
            "budget": asdict(self.budget),
            "counts": self.counts,
            "recommendations": recs,
            "encode": {**asdict(self.encode), "held": self.encode.held},
            "rows": [r.record() for r in self.rows],
            "jobs": [j.record() for j in self.jobs],
        }


def build_report(
    paths: str | Path | Sequence[str | Path],
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    budget: Budget | None = None,
    variant_aware: bool = True,
    **scan_options: Any,
) -> SweepReport:
    """Scan, rank, recommend and count encode passes; ``scan_options`` go to :func:`scan`."""
    sources = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    jobs = scan(sources, **scan_options)
    if not jobs:
        raise FileNotFoundError(
            f"no job folders (results.json or .hydra/) under {', '.join(map(str, sources))}"
        )
    budget = budget or Budget()
    rows = build_table(jobs, metric, mode=mode, variant_aware=variant_aware)
    # The W&B group the job runs logged to when they agree on one, else the one the runner derives.
    groups = {get(j.config, "logger", "wandb", "group") for j in jobs if j.config} - {None}
    sweep_id = str(groups.pop()) if len(groups) == 1 else sweep_group_for_dir(sources[0])
    wandb = next((w for j in jobs if isinstance(w := get(j.config, "logger", "wandb"), dict)), {})
    report = SweepReport(
        sources,
        sweep_id,
        metric,
        budget,
        jobs,
        rows,
        recommend(rows, budget),
        count_encode_passes(jobs),
        wandb,
    )
    log.info("Report over %d jobs (%s), %d configuration cells", len(jobs), report.counts_text, len(rows))
    return report
