"""Jobs -> configuration cells: quality next to what it costs, seeds folded, ranked, Pareto-marked.

A job's quality and costs are read at the variant cells its configuration deploys
(``JobRecord.deployed``, from the cells results.json recorded): the monitor names the
float32, full-dimension, exact-search number, identical for every dimension /
precision / index cell of a model, so the deployed cell's key is used instead.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from embedlab.eval.variants import Cell
from embedlab.report.scan import AXES, JobRecord, Mode

THROUGHPUT_SUFFIXES: tuple[str, ...] = ("encode_texts_per_s", "encode_documents_per_s")
CSV_COLUMNS: tuple[str, ...] = (
    "rank", *AXES, "other", "quality_key", "quality_mean", "quality_std", "n_seeds", "n_failed", "n_nan",
    "throughput", "throughput_shared", "memory_mb", "latency_ms", "bytes_per_vector",
    "pareto_throughput", "pareto_memory", "seeds", "jobs",
)  # fmt: skip
# Cost columns of the ranked table: (row attribute, header, format); shown when some row has a value.
COST_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("throughput", "encode texts/s", ".0f"),
    ("memory_mb", "index MB", ".2f"),
    ("latency_ms", "p50 ms", ".3g"),
    ("bytes_per_vector", "bytes/vector", ".0f"),
)


def dataset_of(key: str) -> str | None:
    parts = key.split("/", 2)
    return parts[1] if len(parts) == 3 else None


def _by_name(job: JobRecord) -> dict[str, float]:
    """Metrics without their ``split/dataset/`` prefix."""
    return {k.split("/", 2)[-1]: v for k, v in job.metrics.items()}


def finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def quality_of(
    job: JobRecord, metric: str | None = None, *, variant_aware: bool = True
) -> tuple[str | None, float]:
    """The job's quality: ``(key used, value)``.

    ``metric`` (default: the job's ``monitor``) names the base key, e.g.
    ``test/scifact/ndcg@10``. With ``variant_aware`` the key of each deployed cell is used
    instead (``ndcg@10@128``, ``ndcg@10@int8``, ``ndcg@10@hnsw``). A job with a precision
    and an index deploys two cells (``@128@int8``, ``@128@hnsw``): the worst of them is
    taken, since the deployed system pays every loss at once.
    """
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
    vals = finite(job.metrics[k] for k in same)
    return statistics.fmean(vals) if vals else math.nan


def _storage_and_index(job: JobRecord) -> tuple[Cell, Cell | None]:
    """The deployed cell that stores the vectors (dimension x precision) and the index cell."""
    cells = job.deployed or [Cell()]
    index = next((c for c in cells if c.index), None)
    return next((c for c in cells if not c.index), index.storage if index else Cell()), index


def bytes_per_vector_of(job: JobRecord) -> float:
    """Stored bytes per document vector at the job's precision and dimension."""
    storage, _ = _storage_and_index(job)
    return _by_name(job).get(storage.bytes_key, math.nan)


def memory_mb_of(job: JobRecord) -> float:
    """Index memory of the cell as deployed. An exact (flat) index stores the vectors alone,
    so a cell with a lower precision needs the measured float32 flat index scaled by its
    bytes per vector; other index kinds report what they measured."""
    storage, index = _storage_and_index(job)
    if index is None:
        return math.nan
    names = _by_name(job)
    mb = names.get(index.key("index_total_mb"), math.nan)
    if index.index != "flat" or not math.isfinite(mb):
        return mb
    full, stored = names.get(index.storage.bytes_key, math.nan), names.get(storage.bytes_key, math.nan)
    return mb * stored / full if math.isfinite(full) and full > 0 and math.isfinite(stored) else mb


def latency_ms_of(job: JobRecord) -> float:
    _, index = _storage_and_index(job)
    return _by_name(job).get(index.key("index_latency_p50_ms"), math.nan) if index else math.nan


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
        vals = finite(self.qualities)
        return statistics.fmean(vals) if vals else math.nan

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
        parts = [f"{a}={self.axes[a]}" for a in AXES if a in self.axes]
        return ", ".join(parts + list(self.shown_extras))

    def record(self) -> dict[str, Any]:
        """The row as plain values (NaN -> None): the CSV, JSON and W&B table row."""

        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        out = {c: getattr(self, c, None) for c in CSV_COLUMNS}
        out.update({a: self.axes.get(a) for a in AXES}, other=" ".join(self.extras),
                   seeds=" ".join(str(s) for s in self.seeds), jobs=" ".join(self.jobs))  # fmt: skip
        for c in ("quality_mean", "quality_std", "throughput", "memory_mb", "latency_ms", "bytes_per_vector"):
            out[c] = num(out[c])
        return out


def pareto_front(
    points: Sequence[tuple[float, float]], *, maximize: tuple[bool, bool] = (True, True)
) -> list[bool]:
    """Flags the points that no other point dominates.

    ``q`` dominates ``p`` when it is at least as good on both coordinates and strictly
    better on one. Points with a NaN coordinate are never on the front; identical
    points do not dominate each other, so both stay.
    """
    sign = (1.0 if maximize[0] else -1.0, 1.0 if maximize[1] else -1.0)
    pts = [(x * sign[0], y * sign[1]) for x, y in points]
    flags = []
    for i, (x, y) in enumerate(pts):
        dominated = any(
            j != i and math.isfinite(a) and math.isfinite(b) and a >= x and b >= y and (a > x or b > y)
            for j, (a, b) in enumerate(pts)
        )
        flags.append(math.isfinite(x) and math.isfinite(y) and not dominated)
    return flags


# (row attribute, Pareto flag attribute, larger is better) per cost axis of the fronts
PARETO_COSTS: dict[str, tuple[str, str, bool]] = {
    "throughput": ("throughput", "pareto_throughput", True),
    "memory": ("memory_mb", "pareto_memory", False),
}


def _mark_pareto(rows: list[CellRow]) -> None:
    for data in dict.fromkeys(r.data for r in rows):
        group = [r for r in rows if r.data == data]
        for attr, flag, maximize_x in PARETO_COSTS.values():
            usable = [r for r in group if math.isfinite(getattr(r, attr)) and math.isfinite(r.quality_mean)]
            maximize_q = all(r.mode == "max" for r in usable)
            flags = pareto_front(
                [(getattr(r, attr), r.quality_mean) for r in usable], maximize=(maximize_x, maximize_q)
            )
            for r, f in zip(usable, flags, strict=True):
                setattr(r, flag, f)


def _labels(rows: list[CellRow]) -> None:
    """Short labels naming only what varies across the table (full text in describe())."""
    varying = [a for a in AXES if len({r.axes.get(a) for r in rows}) > 1]
    common = set.intersection(*(set(r.extras) for r in rows)) if rows else set()
    for r in rows:
        r.shown_extras = tuple(e for e in r.extras if e not in common)
        parts = [f"{a}={r.axes.get(a)}" for a in varying] + list(r.shown_extras)
        r.label = ", ".join(parts) or r.describe()


def _row(cell_jobs: list[JobRecord], metric: str | None, mode: Mode | None, variant_aware: bool,
         speeds: dict[tuple[str, ...], list[float]]) -> CellRow:  # fmt: skip
    ok = [j for j in cell_jobs if j.ok]
    first = (ok or cell_jobs)[0]
    row = CellRow(
        axes={a: first.axes.get(a, "?") for a in AXES}, extras=first.extras, mode=mode or first.monitor_mode,
        quality_key=quality_of(first, metric, variant_aware=variant_aware)[0],
        qualities=[quality_of(j, metric, variant_aware=variant_aware)[1] for j in ok],
        seeds=[j.seed for j in ok], jobs=[j.name for j in cell_jobs], n_failed=len(cell_jobs) - len(ok),
    )  # fmt: skip
    own = finite(throughput_of(j) for j in ok)
    if own:
        row.throughput = statistics.fmean(own)
    elif ok and (shared := finite(v for j in ok for v in speeds.get(encoder_key(j), []))):
        row.throughput, row.throughput_shared = statistics.fmean(shared), True
    for attr, fn in (("memory_mb", memory_mb_of), ("latency_ms", latency_ms_of),
                     ("bytes_per_vector", bytes_per_vector_of)):  # fmt: skip
        vals = finite(fn(j) for j in ok)
        setattr(row, attr, statistics.fmean(vals) if vals else math.nan)
    return row


def build_table(
    jobs: Sequence[JobRecord],
    metric: str | None = None,
    *,
    mode: Mode | None = None,
    variant_aware: bool = True,
) -> list[CellRow]:
    """One row per configuration cell, ranked by quality within each dataset.

    Seeds are folded into mean and sample std (``n_seeds`` completed jobs, NaN qualities
    kept out of the mean but counted). Cost columns are cell means. A job that read its
    corpus embeddings from the cache reports no encode throughput; it borrows the mean of
    jobs that encoded with the same (model, pooling, weights, dataset), flagged as
    ``throughput_shared``. Cells with no completed job stay in the table, unranked.
    """
    cells: dict[tuple[str, ...], list[JobRecord]] = defaultdict(list)
    speeds: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for job in jobs:
        cells[job.cell_key].append(job)
        if job.ok and math.isfinite(t := throughput_of(job)):
            speeds[encoder_key(job)].append(t)
    rows = [_row(cell_jobs, metric, mode, variant_aware, speeds) for cell_jobs in cells.values()]
    ranked: list[CellRow] = []
    for data in sorted({r.data for r in rows}):
        group = [r for r in rows if r.data == data]
        scored = sorted(
            (r for r in group if math.isfinite(r.quality_mean)),
            key=lambda r: (-r.quality_mean if r.mode == "max" else r.quality_mean,
                           -r.throughput if math.isfinite(r.throughput) else math.inf, r.describe()),
        )  # fmt: skip
        for i, r in enumerate(scored, start=1):
            r.rank = i
        ranked += scored + sorted(
            (r for r in group if not math.isfinite(r.quality_mean)), key=CellRow.describe
        )
    _labels(ranked)
    _mark_pareto(ranked)
    return ranked


def varying_axes(rows: Sequence[CellRow]) -> list[str]:
    return [a for a in AXES if len({r.axes.get(a) for r in rows}) > 1]


def _quality_cell(r: CellRow) -> str:
    q = format(r.quality_mean, ".4f") if math.isfinite(r.quality_mean) else ("NaN" if r.n_seeds else "failed")
    return q + (f" ({r.n_nan} NaN)" if r.n_nan else "")


def ranked_table(rows: Sequence[CellRow]) -> tuple[list[str], list[list[str]]]:
    """The ranked table as header + string cells (Markdown, HTML and the W&B Report)."""
    varying = varying_axes(rows) or list(AXES)  # the constant axes go in a line above
    show_other = len({r.extras for r in rows}) > 1
    costs = [c for c in COST_COLUMNS if any(math.isfinite(getattr(r, c[0])) for r in rows)]
    header = ["rank", *varying, *(["other"] if show_other else []), "quality", "± std", "seeds", "failed"]
    header += [h for _, h, _ in costs] + ["front: throughput", "front: memory"]
    body = []
    for r in rows:
        cells = [str(r.rank) if r.rank is not None else "-", *(r.axes.get(a, "?") for a in varying)]
        cells += [" ".join(r.extras)] if show_other else []
        cells += [_quality_cell(r), format(r.quality_std, ".4f") if math.isfinite(r.quality_std) else "",
                  str(r.n_seeds), str(r.n_failed or "")]  # fmt: skip
        for attr, _, spec in costs:
            v = getattr(r, attr)
            text = format(v, spec) if math.isfinite(v) else ""
            cells.append(text + ("*" if attr == "throughput" and r.throughput_shared and text else ""))
        flags = (r.pareto_throughput, r.pareto_memory)
        body.append(cells + ["yes" if f else ("no" if f is False else "") for f in flags])
    return header, body


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(esc(c) for c in row) + " |" for row in body])
