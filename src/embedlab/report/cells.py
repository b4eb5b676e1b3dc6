"""Jobs -> configuration cells: quality next to what it costs, seeds folded, ranked, Pareto-marked.

Quality and costs are read at the variant cells a job deploys (``JobRecord.deployed``): the
monitor names the float32, full-dimension, exact-search number, the same for every
dimension / precision / index cell of a model.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedlab.eval.variants import Cell
from embedlab.report.scan import AXES, JobRecord, Mode

THROUGHPUT_SUFFIXES: tuple[str, ...] = ("encode_texts_per_s", "encode_documents_per_s")
CSV_COLUMNS: tuple[str, ...] = (
    *("rank", *AXES, "other", "quality_key", "quality_mean", "quality_std", "n_seeds", "n_failed", "n_nan"),
    *("throughput", "throughput_shared", "memory_mb", "latency_ms", "bytes_per_vector"),
    *("pareto_throughput", "pareto_memory", "seeds", "jobs"),
)
# Costs: (row attribute, ranked-table header and format, recommendation text); a table column
# is shown when some row has a value.
COST_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("throughput", "encode texts/s", ".0f", "encodes {:.0f} texts/s"),
    ("memory_mb", "index MB", ".2f", "index {:.1f} MB"),
    ("latency_ms", "p50 ms", ".3g", "p50 latency {:.3g} ms"),
    ("bytes_per_vector", "bytes/vector", ".0f", "{:.0f} bytes/vector"),
)
# Pareto fronts: cost name -> (row attribute, flag attribute, larger cost is better)
PARETO_COSTS: dict[str, tuple[str, str, bool]] = {
    "throughput": ("throughput", "pareto_throughput", True),
    "memory": ("memory_mb", "pareto_memory", False),
}


def dataset_of(key: str) -> str | None:
    parts = key.split("/", 2)
    return parts[1] if len(parts) == 3 else None


def finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _mean(values: Iterable[float]) -> float:
    vals = finite(values)
    return statistics.fmean(vals) if vals else math.nan


def quality_of(
    job: JobRecord, metric: str | None = None, *, variant_aware: bool = True
) -> tuple[str | None, float]:
    """The job's quality as ``(key used, value)``, ``metric`` defaulting to its monitor. ``variant_aware``
    reads each deployed cell's key (``ndcg@10@128``); of two (precision and index), the worse: both apply."""
    base = metric or job.monitor
    if base is None:
        return None, math.nan
    keys = (
        [c.key(base) for c in job.deployed if c.tag and c.key(base) in job.metrics] if variant_aware else []
    )
    if not keys:
        return base, job.metrics.get(base, math.nan)
    usable = [k for k in keys if math.isfinite(job.metrics[k])]
    if len(keys) == 1 or not usable:
        return keys[0], job.metrics[keys[0]]
    pick = min if job.monitor_mode == "max" else max
    return f"worst of ({', '.join(keys)})", job.metrics[pick(usable, key=job.metrics.__getitem__)]


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
    index = next((c for c in cells if c.index), None)
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
    """One configuration cell: all jobs that differ only by seed, folded together."""

    axes: dict[str, str]
    extras: tuple[str, ...]
    mode: Mode
    quality_key: str | None
    qualities: list[float]
    seeds: list[int | None]
    jobs: list[str]
    n_failed: int = 0
    throughput: float = math.nan
    throughput_shared: bool = False
    memory_mb: float = math.nan
    latency_ms: float = math.nan
    bytes_per_vector: float = math.nan
    label: str = ""
    shown_extras: tuple[str, ...] = ()
    rank: int | None = None
    pareto_throughput: bool | None = None
    pareto_memory: bool | None = None

    @property
    def n_seeds(self) -> int:
        """Completed jobs in the cell (a NaN quality still counts as a completed seed)."""
        return len(self.qualities)

    @property
    def n_nan(self) -> int:
        return sum(1 for q in self.qualities if not math.isfinite(q))

    @property
    def quality_mean(self) -> float:
        return _mean(self.qualities)

    @property
    def quality_std(self) -> float:
        """Sample standard deviation over seeds (ddof=1); NaN with fewer than two."""
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


def _mark_pareto(group: list[CellRow]) -> None:
    """Set the Pareto flags of one dataset's rows, per cost axis."""
    for attr, flag, maximize_x in PARETO_COSTS.values():
        usable = [r for r in group if math.isfinite(getattr(r, attr)) and math.isfinite(r.quality_mean)]
        points = [(getattr(r, attr), r.quality_mean) for r in usable]
        flags = pareto_front(points, maximize=(maximize_x, all(r.mode == "max" for r in usable)))
        for r, f in zip(usable, flags, strict=True):
            setattr(r, flag, f)


def varying_axes(rows: Sequence[CellRow]) -> list[str]:
    return [a for a in AXES if len({r.axes.get(a) for r in rows}) > 1]


def _labels(rows: list[CellRow]) -> None:
    """Short labels naming only what varies across the table (full text in describe())."""
    common = set.intersection(*(set(r.extras) for r in rows)) if rows else set()
    for r in rows:
        r.shown_extras = tuple(e for e in r.extras if e not in common)
        r.label = ", ".join([f"{a}={r.axes.get(a)}" for a in varying_axes(rows)] + list(r.shown_extras))
        r.label = r.label or r.describe()


def _row(cell_jobs: list[JobRecord], metric: str | None, mode: Mode | None, variant_aware: bool) -> CellRow:
    ok = [j for j in cell_jobs if j.ok]
    first = (ok or cell_jobs)[0]
    row = CellRow(
        axes={a: first.axes.get(a, "?") for a in AXES},
        extras=first.extras,
        mode=mode or first.monitor_mode,
        quality_key=quality_of(first, metric, variant_aware=variant_aware)[0],
        qualities=[quality_of(j, metric, variant_aware=variant_aware)[1] for j in ok],
        seeds=[j.seed for j in ok],
        jobs=[j.name for j in cell_jobs],
        n_failed=len(cell_jobs) - len(ok),
        throughput=_mean(throughput_of(j) for j in ok),
    )
    costs = [costs_of(j) for j in ok]
    for attr in ("memory_mb", "latency_ms", "bytes_per_vector"):
        setattr(row, attr, _mean(c[attr] for c in costs))
    return row


def build_table(
    jobs: Sequence[JobRecord],
    metric: str | None = None,
    *,
    mode: Mode | None = None,
    variant_aware: bool = True,
) -> list[CellRow]:
    """One row per configuration cell, ranked by quality within each dataset; seeds fold into mean and
    sample std (NaN qualities counted, not averaged), costs into means. A job that read cached corpus
    embeddings borrows the throughput of its encoder's jobs (``throughput_shared``); cells without a
    completed job stay, unranked."""
    cells: dict[tuple[str, ...], list[JobRecord]] = defaultdict(list)
    speeds: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for job in jobs:
        cells[job.cell_key].append(job)
        if job.ok:
            speeds[encoder_key(job)].append(throughput_of(job))
    rows = [_row(cell_jobs, metric, mode, variant_aware) for cell_jobs in cells.values()]
    for row, cell_jobs in zip(rows, cells.values(), strict=True):
        shared = _mean(v for j in cell_jobs if j.ok for v in speeds[encoder_key(j)])
        if math.isnan(row.throughput) and math.isfinite(shared):
            row.throughput, row.throughput_shared = shared, True
    ranked: list[CellRow] = []
    for data in sorted({r.data for r in rows}):
        group = [r for r in rows if r.data == data]
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
        _mark_pareto(group)
        ranked += scored + sorted((r for r in group if r.rank is None), key=CellRow.describe)
    _labels(ranked)
    return ranked


def ranked_table(rows: Sequence[CellRow]) -> tuple[list[str], list[list[str]]]:
    """The ranked table as header + string cells (Markdown, HTML and the W&B Report)."""
    varying = varying_axes(rows) or list(AXES)  # the constant axes go in a line above
    show_other = len({r.extras for r in rows}) > 1
    costs = [c for c in COST_COLUMNS if any(math.isfinite(getattr(r, c[0])) for r in rows)]
    header = ["rank", *varying, *(["other"] if show_other else []), "quality", "± std", "seeds", "failed"]
    header += [h for _, h, _, _ in costs] + ["front: throughput", "front: memory"]
    body = []
    for r in rows:
        q = _num(r.quality_mean, ".4f") or ("NaN" if r.n_seeds else "failed")
        cells = [str(r.rank or "-"), *(r.axes.get(a, "?") for a in varying)] + [
            " ".join(r.extras)
        ] * show_other
        cells += [q + (f" ({r.n_nan} NaN)" if r.n_nan else ""), _num(r.quality_std, ".4f")]
        cells += [str(r.n_seeds), str(r.n_failed or "")]
        for attr, _, spec, _ in costs:
            text = _num(getattr(r, attr), spec)
            cells.append(text + ("*" if attr == "throughput" and r.throughput_shared and text else ""))
        body.append(cells + [_FLAG[f] for f in (r.pareto_throughput, r.pareto_memory)])
    return header, body


_FLAG = {True: "yes", False: "no", None: ""}


def _num(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else ""


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in [header, *body]]
    return "\n".join([lines[0], "|" + "---|" * len(header), *lines[1:]])
