"""Jobs -> configuration cells: seeds folded, quality next to its costs, ranked and Pareto-marked per
dataset. Both are read at the variant cells a job deploys (``JobRecord.deployed``): the monitor names
the float32, full-dimension, exact-search number every dimension / precision / index cell shares."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from embedlab.eval.variants import Cell
from embedlab.report.scan import AXES, JobRecord, Mode
from embedlab.report.stats import Units, load_units, mark_ties

THROUGHPUT_SUFFIXES: tuple[str, ...] = ("encode_texts_per_s", "encode_documents_per_s")


@dataclass(frozen=True)
class Cost:
    """A measured cost: its CellRow attribute, wording, the Budget field limiting it and the Pareto
    front of quality against it (flag ``CellRow.pareto_<front>``)."""

    attr: str
    name: str
    unit: str
    spec: str
    larger_is_better: bool = False
    limit: str | None = None
    front: str | None = None


COSTS: tuple[Cost, ...] = (
    Cost("throughput", "encode throughput", "texts/s", ".0f", True, "min_throughput", "throughput"),
    Cost("memory_mb", "index memory", "MB", ".2f", limit="max_memory_mb", front="memory"),
    Cost("latency_ms", "p50 latency", "ms", ".3g", limit="max_latency_ms"),
    Cost("bytes_per_vector", "stored size", "bytes/vector", ".0f"),
)
PARETO_COSTS: dict[str, Cost] = {c.front: c for c in COSTS if c.front}
CSV_COLUMNS: tuple[str, ...] = (
    *("rank", *AXES, "other", "quality_key", "quality_mean", "quality_std", "n_seeds", "n_failed", "n_nan"),
    *("ci_low", "ci_high", "n_units", "p_value", "p_holm", "tied"),
    *("throughput", "throughput_shared", "memory_mb", "latency_ms", "bytes_per_vector"),
    *("pareto_throughput", "pareto_memory", "seeds", "jobs"),
)


def dataset_of(key: str) -> str | None:
    parts = key.split("/", 2)
    return parts[1] if len(parts) == 3 else None


def finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _mean(values: Iterable[float]) -> float:
    vals = finite(values)
    return statistics.fmean(vals) if vals else math.nan


def quality_cell(
    job: JobRecord, metric: str | None = None, *, variant_aware: bool = True
) -> tuple[str | None, str]:
    """The results key the job's quality is read from, and its cell tag: each deployed cell's key
    (``ndcg@10@128``); of two (precision and index), the worse, since the system pays both."""
    base = metric or job.monitor
    if base is None:
        return None, ""
    cells = [c for c in job.deployed if c.tag and c.key(base) in job.metrics] if variant_aware else []
    usable = [c for c in cells if math.isfinite(job.metrics[c.key(base)])]
    if not usable:
        return (cells[0].key(base), cells[0].tag) if cells else (base, "")
    pick = min if job.monitor_mode == "max" else max
    worst = pick(usable, key=lambda c: job.metrics[c.key(base)])
    return worst.key(base), worst.tag


def quality_of(
    job: JobRecord, metric: str | None = None, *, variant_aware: bool = True
) -> tuple[str | None, float]:
    """The job's quality as ``(key used, value)``, ``metric`` defaulting to its monitor (see
    :func:`quality_cell`); a pick among two deployed cells reads ``worst of (key, key)``."""
    key, _ = quality_cell(job, metric, variant_aware=variant_aware)
    if key is None:
        return None, math.nan
    base = metric or job.monitor
    keys = (
        [c.key(base) for c in job.deployed if c.tag and c.key(base) in job.metrics] if variant_aware else []
    )
    label = f"worst of ({', '.join(keys)})" if len(keys) > 1 else key
    return label, job.metrics.get(key, math.nan)


def throughput_of(job: JobRecord) -> float:
    """Encode throughput (texts or corpus documents per second), averaged over splits."""
    keys = [k for k in job.metrics if k.endswith(THROUGHPUT_SUFFIXES)]
    same = [k for k in keys if dataset_of(k) == job.axes.get("data")] or keys
    return _mean(job.metrics[k] for k in same)


def costs_of(job: JobRecord) -> dict[str, float]:
    """Index memory, p50 latency and stored bytes per vector of the job's deployed cells. A flat
    index stores the vectors alone: at a lower precision its float32 size scales by bytes per vector."""
    names = {k.split("/", 2)[-1]: v for k, v in job.metrics.items()}
    cells = job.deployed or [Cell()]
    index = next((replace(c, fusion=None) for c in cells if c.index), None)  # a hybrid pays its index
    storage = next((c for c in cells if not c.index), index.storage if index else Cell())
    stored = names.get(storage.bytes_key, math.nan)
    if index is None:
        return {"memory_mb": math.nan, "latency_ms": math.nan, "bytes_per_vector": stored}
    mb = names.get(index.key("index_total_mb"), math.nan)
    full = names.get(index.storage.bytes_key, math.nan)
    if index.index == "flat" and all(map(math.isfinite, (mb, full, stored))) and full > 0:
        mb *= stored / full
    latency = names.get(index.key("index_latency_p50_ms"), math.nan)
    return {"memory_mb": mb, "latency_ms": latency, "bytes_per_vector": stored}


def encoder_key(job: JobRecord) -> tuple[str, ...]:
    """What one corpus encode depends on: (model, pooling, weights, dataset)."""
    return (job.axes.get("model", "?"), job.axes.get("pooling", "?"), job.weights, job.axes.get("data", "?"))


@dataclass
class CellRow:
    """One configuration cell: the jobs that differ only by seed, folded together. ``qualities`` has
    one value per completed seed (NaN counted in ``n_nan``, not averaged); costs are seed means."""

    axes: dict[str, str]
    extras: tuple[str, ...]
    mode: Mode
    quality_key: str | None
    qualities: list[float]
    seeds: list[int | None]
    jobs: list[str]
    n_failed: int = 0
    throughput: float = math.nan
    throughput_shared: bool = False  # measured by jobs with the same encoder (this one read the cache)
    memory_mb: float = math.nan
    latency_ms: float = math.nan
    bytes_per_vector: float = math.nan
    label: str = ""
    shown_extras: tuple[str, ...] = ()
    rank: int | None = None
    pareto_throughput: bool | None = None
    pareto_memory: bool | None = None
    units: Units | None = field(default=None, repr=False)  # per-query / per-pair values (report.stats)
    ci_low: float = math.nan  # 95% bootstrap interval of the quality
    ci_high: float = math.nan
    n_units: int | None = None  # queries or pairs the interval and the test rest on
    p_value: float = math.nan  # paired test against the dataset's best
    p_holm: float = math.nan  # Holm-adjusted over the dataset's comparisons
    tied: bool | None = None  # statistically tied with the best (None: not tested)

    @property
    def n_seeds(self) -> int:
        return len(self.qualities)

    @property
    def n_nan(self) -> int:
        return len(self.qualities) - len(finite(self.qualities))

    @property
    def quality_mean(self) -> float:
        return _mean(self.qualities)

    @property
    def quality_std(self) -> float:  # sample standard deviation (ddof=1); NaN under two seeds
        vals = finite(self.qualities)
        return statistics.stdev(vals) if len(vals) > 1 else math.nan

    @property
    def data(self) -> str:
        return self.axes.get("data", "?")

    def describe(self) -> str:
        """Every axis, plus the extra overrides that differ between cells (not e.g. debug=fast)."""
        return ", ".join([f"{a}={self.axes[a]}" for a in AXES if a in self.axes] + list(self.shown_extras))

    def record(self) -> dict[str, Any]:
        """The row as plain values (NaN -> None, lists space-joined): the CSV, JSON and W&B row."""
        given = {**self.axes, "other": self.extras}
        out = {}
        for c in CSV_COLUMNS:
            v = given[c] if c in given else getattr(self, c)
            if isinstance(v, list | tuple):
                v = " ".join(str(x) for x in v)
            out[c] = None if isinstance(v, float) and not math.isfinite(v) else v
        return out


def pareto_front(
    points: Sequence[tuple[float, float]], *, maximize: tuple[bool, bool] = (True, True)
) -> list[bool]:
    """Flags the points no other point dominates (at least as good on both, better on one).
    A NaN coordinate is never on the front; identical points do not dominate each other."""
    p = np.asarray(points, dtype=float).reshape(-1, 2) * np.where(maximize, 1.0, -1.0)  # (N, 2)
    ok = np.isfinite(p).all(axis=1)
    # dominated[i, j]: point j is at least as good as i on both and better on one
    dominated = (p[None] >= p[:, None]).all(axis=2) & (p[None] > p[:, None]).any(axis=2) & ok[None]
    return (ok & ~dominated.any(axis=1)).tolist()


def varying_axes(rows: Sequence[CellRow]) -> list[str]:
    return [a for a in AXES if len({r.axes.get(a) for r in rows}) > 1]


def _row(cell_jobs: list[JobRecord], metric: str | None, mode: Mode | None, variant_aware: bool) -> CellRow:
    ok = [j for j in cell_jobs if j.ok]
    first = (ok or cell_jobs)[0]
    costs = [costs_of(j) for j in ok]
    key, tag = quality_cell(first, metric, variant_aware=variant_aware)
    return CellRow(
        axes={a: first.axes.get(a, "?") for a in AXES},
        extras=first.extras,
        mode=mode or first.monitor_mode,
        quality_key=quality_of(first, metric, variant_aware=variant_aware)[0],
        qualities=[quality_of(j, metric, variant_aware=variant_aware)[1] for j in ok],
        seeds=[j.seed for j in ok],
        jobs=[j.name for j in cell_jobs],
        n_failed=len(cell_jobs) - len(ok),
        throughput=_mean(throughput_of(j) for j in ok),
        **{attr: _mean(c[attr] for c in costs) for attr in ("memory_mb", "latency_ms", "bytes_per_vector")},
        units=load_units(sorted(ok, key=lambda j: j.seed or 0), key, tag),
    )


def rank_dataset(group: list[CellRow]) -> list[CellRow]:
    """One dataset's rows ranked (quality, then throughput, then name; unscored rows last, unranked)
    and Pareto-marked per cost with a front."""
    scored = sorted(
        (r for r in group if math.isfinite(r.quality_mean)),
        key=lambda r: (
            -r.quality_mean if r.mode == "max" else r.quality_mean,
            -r.throughput if math.isfinite(r.throughput) else math.inf,
            r.describe(),
        ),
    )
    for i, r in enumerate(scored, start=1):
        r.rank = i
    mark_ties(scored)
    for front, cost in PARETO_COSTS.items():
        usable = [r for r in group if math.isfinite(getattr(r, cost.attr)) and math.isfinite(r.quality_mean)]
        points = [(getattr(r, cost.attr), r.quality_mean) for r in usable]
        maximize = (cost.larger_is_better, all(r.mode == "max" for r in usable))
        for r, flag in zip(usable, pareto_front(points, maximize=maximize), strict=True):
            setattr(r, f"pareto_{front}", flag)
    return scored + sorted((r for r in group if r.rank is None), key=CellRow.describe)


def build_table(
    jobs: Sequence[JobRecord],
    metric: str | None = None,
    *,
    mode: Mode | None = None,
    variant_aware: bool = True,
) -> list[CellRow]:
    """One row per configuration cell, ranked within each dataset; seeds fold into mean and sample
    std, costs into means. A job that read cached corpus embeddings borrows the throughput of its
    encoder's jobs (``throughput_shared``); cells without a completed job stay, unranked."""
    cells: dict[tuple[str, ...], list[JobRecord]] = defaultdict(list)
    speeds: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for job in jobs:
        cells[job.cell_key].append(job)
        if job.ok:
            speeds[encoder_key(job)].append(throughput_of(job))
    by_data: dict[str, list[CellRow]] = defaultdict(list)
    for cell_jobs in cells.values():
        row = _row(cell_jobs, metric, mode, variant_aware)
        shared = _mean(v for j in cell_jobs if j.ok for v in speeds[encoder_key(j)])
        if math.isnan(row.throughput) and math.isfinite(shared):
            row.throughput, row.throughput_shared = shared, True
        by_data[row.data].append(row)
    ranked = [r for data in sorted(by_data) for r in rank_dataset(by_data[data])]
    # Short labels name only what varies across the table (the full text is describe()).
    common = set.intersection(*(set(r.extras) for r in ranked)) if ranked else set()
    varying = varying_axes(ranked)
    for r in ranked:
        r.shown_extras = tuple(e for e in r.extras if e not in common)
        r.label = ", ".join([f"{a}={r.axes.get(a)}" for a in varying] + list(r.shown_extras))
        r.label = r.label or r.describe()
    return ranked


def _num(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else ""


def ranked_table(rows: Sequence[CellRow]) -> tuple[list[str], list[list[str]]]:
    """The ranked table as header + string cells: the one table model Markdown, HTML and W&B render."""
    varying = varying_axes(rows) or list(AXES)  # the constant axes go in a line above
    show_other = len({r.extras for r in rows}) > 1
    costs = [c for c in COSTS if any(math.isfinite(getattr(r, c.attr)) for r in rows)]
    tested = any(r.tied is not None for r in rows)
    header = ["rank", *varying, *(["other"] * show_other), "quality", "± std", "seeds", "failed"]
    header += ["95% CI", "tied with best", "p (Holm)"] if tested else []
    header += [f"{c.name} ({c.unit})" for c in costs] + [f"front: {front}" for front in PARETO_COSTS]
    body = []
    for r in rows:
        q = _num(r.quality_mean, ".4f") or ("NaN" if r.n_seeds else "failed")
        cells = [str(r.rank or "-"), *(r.axes.get(a, "?") for a in varying)] + [
            " ".join(r.extras)
        ] * show_other
        cells += [q + (f" ({r.n_nan} NaN)" if r.n_nan else ""), _num(r.quality_std, ".4f"), str(r.n_seeds)]
        cells.append(str(r.n_failed or ""))
        if tested:
            ci = f"[{r.ci_low:.4f}, {r.ci_high:.4f}]" if math.isfinite(r.ci_low) else ""
            verdict = (
                {True: "yes", False: "no", None: ""}[r.tied] if r.rank != 1 or r.tied is None else "best"
            )
            cells += [ci, verdict, _p_text(r.p_holm)]
        for c in costs:
            text = _num(getattr(r, c.attr), c.spec)
            cells.append(text + ("*" if c.attr == "throughput" and r.throughput_shared and text else ""))
        flags = (getattr(r, f"pareto_{front}") for front in PARETO_COSTS)
        body.append(cells + [{True: "yes", False: "no", None: ""}[f] for f in flags])
    return header, body


def _p_text(p: float) -> str:
    """A p-value for a table: '' when not tested, '< 0.0001' when no permutation reached the difference."""
    if not math.isfinite(p):
        return ""
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in [header, *body]]
    return "\n".join([lines[0], "|" + "---|" * len(header), *lines[1:]])
