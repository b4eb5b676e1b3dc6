"""Sweep results -> job records, a ranked table, Pareto fronts and a recommendation.

A sweep over model x pooling x dimension x quantization x index leaves one
``results.json`` per job. A decision needs them side by side: quality next to what it
costs (encode throughput, index memory, query latency, bytes per vector), seeds folded
into mean and standard deviation, failed jobs in plain view rather than silently
missing, and a recommendation that says which budget it honoured. Everything here is
plain Python over JSON and YAML files (no torch, no Hydra at import time), so the report
runs wherever the output folders were copied to.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "running", "not_started"]
Mode = Literal["max", "min"]

# The configuration axes a sweep varies; a "cell" is one value of each (seeds aside).
AXES: tuple[str, ...] = ("model", "pooling", "dimension", "quantization", "index", "data")
# Override keys that say where outputs go, which seed ran or how a job was (re)started,
# never what was measured.
_NOT_A_CELL_KEY = re.compile(r"^(hydra\.|paths\.|seed$|redo$|ckpt_path$)")
THROUGHPUT_SUFFIXES: tuple[str, ...] = ("encode_texts_per_s", "encode_documents_per_s")
# A job folder without results.json whose log changed this recently is still running.
RUNNING_WINDOW_S = 600.0
# Files in a job folder that may say why it died: Hydra's job log (train.log /
# evaluate.log), launcher stdout/stderr, and error.txt written by ReportCallback.on_job_end.
# A job that raised inside train.py / evaluate.py says so itself: a results.json with
# "status": "failed" and its error (embedlab.jobs), read before any of these.
_LOG_GLOBS: tuple[str, ...] = ("error.txt", "*.log", "*.err", "*.out")
_TAIL_BYTES = 8192
# Most specific first: an OOM kill or a scheduler limit explains more than a later warning.
_FATAL = re.compile(
    r"\bKilled\b|out of memory|\bOOM\b|DUE TO TIME LIMIT|CANCELLED|Segmentation fault|core dumped", re.I
)
_ERROR = re.compile(r"\b\w*(Error|Exception)\b|\bTraceback\b|\[ERROR\]|\bFAILED\b")
_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ")


# --- job records -----------------------------------------------------------------------


@dataclass
class JobRecord:
    """One job of a sweep (or one run folder), whatever became of it.

    ``axes`` holds the configuration values (model name, pooling mode, dimension and
    quantization option names, index kind, dataset name); ``extras`` the job's other
    overrides (e.g. ``objective.lr=2e-5``) so that cells differing only there are not
    merged. Metrics are flat ``split/dataset/metric`` keys, ``null`` read as NaN.
    """

    path: Path
    name: str
    status: Status
    reason: str = ""
    num: int | None = None
    overrides: tuple[str, ...] = ()
    axes: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    weights: str = "fp32"
    extras: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    monitor: str | None = None
    monitor_mode: Mode = "max"
    config: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def cell_key(self) -> tuple[str, ...]:
        return tuple(self.axes.get(a, "?") for a in AXES) + self.extras

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _get(d: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _value_of(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else ""


def _index_tag(config: dict[str, Any]) -> str | None:
    """The index's name in results keys (``ivf_pq+rescore32`` for re-ranked IVF-PQ), or None."""
    from embedlab.eval.index import index_tag

    kind = _get(config, "index", "kind")
    return None if kind is None else index_tag(str(kind), _get(config, "index", "params") or {})


def _axes_from(config: dict[str, Any], overrides: Sequence[str]) -> dict[str, str]:
    """Axis values from the resolved config, falling back to the override strings."""
    from_config = {
        "model": _get(config, "model", "name"),
        "pooling": _get(config, "pooling", "mode"),
        "dimension": _get(config, "dimension", "name"),
        "quantization": _get(config, "quantization", "name"),
        "index": _index_tag(config) or ("none" if "index" in config else None),
        "data": _get(config, "data", "name"),
    }
    given = {_key_of(o): _value_of(o) for o in overrides}
    return {a: str(from_config[a] if from_config[a] is not None else given.get(a, "?")) for a in AXES}


def _as_float(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _tail(path: Path, n_bytes: int = _TAIL_BYTES) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - n_bytes))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _clean(line: str, limit: int = 300) -> str:
    line = _LOG_PREFIX.sub("", line.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def diagnose(
    job_dir: Path, *, now: float | None = None, running_window_s: float = RUNNING_WINDOW_S
) -> tuple[Status, str]:
    """Why a job folder has no results.json: ``failed`` with the telling log line, or ``running``.

    A line naming a kill, an OOM, a scheduler limit or an exception marks the job failed.
    Without one, a log written within ``running_window_s`` means the job is still going;
    an older one means it died without saying why, and its last line is the best clue.
    """
    now = time.time() if now is None else now
    logs = [p for g in _LOG_GLOBS for p in sorted(job_dir.glob(g)) if p.is_file()]
    error_file = _tail(job_dir / "error.txt")  # written by ReportCallback.on_job_end
    lines = [line for p in logs if p.name != "error.txt" for line in _tail(p)]
    for source, pattern in ((error_file, _ERROR), (lines, _FATAL), (lines, _ERROR)):
        hit = next((line for line in reversed(source) if pattern.search(line)), None)
        if hit is not None:
            return "failed", _clean(hit)
    stamps = [p.stat().st_mtime for p in [job_dir, *logs] if p.exists()]
    age = now - max(stamps) if stamps else math.inf
    if age < running_window_s:
        return "running", f"no results.json yet (folder written {age:.0f} s ago)"
    if lines:
        return "failed", f"no results.json; log ends: {_clean(lines[-1])}"
    return "failed", "no results.json and no log"


def _load_yaml(path: Path) -> Any:
    import yaml  # PyYAML ships with omegaconf; imported here to keep `report.py --help` fast

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


_JOB_NUM = re.compile(r"^(\d+)_")


def _read_overrides(job_dir: Path) -> tuple[str, ...]:
    loaded = _load_yaml(job_dir / ".hydra" / "overrides.yaml")
    if isinstance(loaded, list):
        return tuple(str(o) for o in loaded)
    # No .hydra/ (killed before Hydra wrote it): the folder name is `<num>_<override_dirname>`.
    rest = _JOB_NUM.sub("", job_dir.name) if _JOB_NUM.match(job_dir.name) else ""
    return tuple(o for o in rest.split(",") if "=" in o)


def read_job(
    job_dir: str | Path, *, now: float | None = None, running_window_s: float = RUNNING_WINDOW_S
) -> JobRecord:
    """One job folder -> a JobRecord (never raises on a broken job: that is what it records)."""
    job_dir = Path(job_dir)
    overrides = _read_overrides(job_dir)
    m = _JOB_NUM.match(job_dir.name)
    status: Status
    payload: dict[str, Any] = {}
    results = job_dir / "results.json"
    if results.is_file():
        try:
            payload = json.loads(results.read_text(encoding="utf-8"))
            status, reason = "ok", ""
            if payload.get("status") == "failed":  # written by embedlab.jobs when the job raised
                err = payload.get("error") or {}
                status = "failed"
                reason = _clean(f"{err.get('type', 'Error')}: {err.get('message', '')}".splitlines()[0])
        except (OSError, ValueError) as exc:
            status, reason = "failed", f"unreadable results.json ({exc.__class__.__name__}: {exc})"
    else:
        status, reason = diagnose(job_dir, now=now, running_window_s=running_window_s)
    meta = dict(payload.get("meta") or {})
    config = meta.pop("config", None)
    if not isinstance(config, dict):
        loaded = _load_yaml(job_dir / ".hydra" / "config.yaml")
        config = loaded if isinstance(loaded, dict) else {}
    meta.pop("eval", None)  # per-split details (worst pairs, ...) are not needed and can be large
    seed = _get(config, "seed")
    if seed is None:
        seed = next((_value_of(o) for o in overrides if _key_of(o) == "seed"), None)
    monitor = _get(config, "monitor")
    return JobRecord(
        path=job_dir,
        name=job_dir.name,
        status=status,
        reason=reason,
        num=int(m.group(1)) if m else None,
        overrides=overrides,
        axes=_axes_from(config, overrides),
        seed=int(seed) if seed is not None and str(seed).lstrip("-").isdigit() else None,
        weights=str(_get(config, "quantization", "weights", default="fp32")),
        extras=tuple(
            sorted(o for o in overrides if _key_of(o) not in AXES and not _NOT_A_CELL_KEY.match(_key_of(o)))
        ),
        metrics={str(k): _as_float(v) for k, v in (payload.get("metrics") or {}).items()},
        monitor=str(monitor) if monitor is not None and "${" not in str(monitor) else None,
        monitor_mode="min" if _get(config, "monitor_mode") == "min" else "max",
        config=config,
        meta=meta,
    )


def _is_job_dir(path: Path) -> bool:
    return (path / "results.json").is_file() or (path / ".hydra").is_dir() or bool(_JOB_NUM.match(path.name))


def _job_sort_key(path: Path) -> tuple[int, str]:
    m = _JOB_NUM.match(path.name)
    return (int(m.group(1)) if m else 1 << 30, path.name)


def find_job_dirs(root: str | Path) -> list[Path]:
    """Job folders under ``root``: itself if it is a run folder, its job subfolders if it
    is a multirun folder, or the jobs of every multirun found below it."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    if not (root / "multirun.yaml").exists() and (
        (root / "results.json").is_file() or (root / ".hydra").is_dir()
    ):
        return [root]
    jobs = sorted((p for p in root.iterdir() if p.is_dir() and _is_job_dir(p)), key=_job_sort_key)
    if jobs:
        return jobs
    found: list[Path] = []
    for sweep in sorted(p.parent for p in root.rglob("multirun.yaml")):
        found += sorted((p for p in sweep.iterdir() if p.is_dir() and _is_job_dir(p)), key=_job_sort_key)
    if not found:  # plain run folders somewhere below
        found = sorted({p.parent for p in root.rglob("results.json")})
    return found


LOST_JOBS_FILE = "lost_jobs.json"  # written by embedlab's submitit launchers


def lost_jobs(multirun_dir: str | Path) -> dict[int, str]:
    """{job number: why} for jobs the launcher saw die without returning (killed, OOM, time limit)."""
    path = Path(multirun_dir) / LOST_JOBS_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable %s: %s", path, exc)
        return {}
    return {int(num): f"lost (submitit job {v.get('job_id')}): {v.get('reason')}" for num, v in raw.items()}


def planned_overrides(multirun_dir: str | Path) -> list[list[str]] | None:
    """Every job a basic-sweeper multirun planned, in job-number order (None if unknown).

    Read from ``multirun.yaml`` with Hydra's own override parser and BasicSweeper, so a
    sweep that was killed half-way reports its never-started jobs instead of hiding them.
    Other sweepers (Optuna, ...) choose jobs adaptively: there is no plan to compare to.
    """
    conf = _load_yaml(Path(multirun_dir) / "multirun.yaml")
    sweeper = _get(conf, "hydra", "sweeper", default={}) or {}
    if "BasicSweeper" not in str(sweeper.get("_target_", "")):
        return None
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        task = [str(o) for o in (_get(conf, "hydra", "overrides", "task", default=[]) or [])]
        parsed = OverridesParser.create().parse_overrides(params + task)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception as exc:  # a plan we cannot parse only costs the not-started list
        log.warning("Could not expand the sweep plan in %s: %s", multirun_dir, exc)
        return None
    return [list(job) for batch in batches for job in batch]


def scan(
    paths: str | Path | Sequence[str | Path],
    *,
    running_window_s: float = RUNNING_WINDOW_S,
    now: float | None = None,
) -> list[JobRecord]:
    """Every job under one or more multirun / run folders, including failed and unstarted ones."""
    roots = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    jobs: list[JobRecord] = []
    seen: set[Path] = set()
    for root in roots:
        root_jobs = []
        for job_dir in find_job_dirs(root):
            if job_dir.resolve() in seen:
                continue
            seen.add(job_dir.resolve())
            root_jobs.append(read_job(job_dir, now=now, running_window_s=running_window_s))
        lost = lost_jobs(root)
        for job in root_jobs:  # a folder the killed job left: the launcher knows why better than its log
            if job.num in lost and job.status != "ok":
                job.status, job.reason = "failed", lost[job.num]
        plan = planned_overrides(root) if (root / "multirun.yaml").exists() else None
        if plan is not None:
            present = {j.num for j in root_jobs if j.num is not None}
            for num, ovs in enumerate(plan):
                if num not in present:
                    ovs = [o for o in ovs if not _key_of(o).startswith("hydra.")]
                    root_jobs.append(
                        JobRecord(
                            path=root / f"{num}_{','.join(sorted(ovs))}",
                            name=f"{num}_{','.join(sorted(ovs))}",
                            status="failed" if num in lost else "not_started",
                            reason=lost.get(
                                num, "planned in multirun.yaml but no job folder (sweep stopped before it)"
                            ),
                            num=num,
                            overrides=tuple(ovs),
                            axes=_axes_from({}, ovs),
                            extras=tuple(
                                sorted(
                                    o
                                    for o in ovs
                                    if _key_of(o) not in AXES and not _NOT_A_CELL_KEY.match(_key_of(o))
                                )
                            ),
                        )
                    )
            root_jobs.sort(key=lambda j: (j.num if j.num is not None else 1 << 30, j.name))
        jobs += root_jobs
    _fill_unknown_axes(jobs)
    return jobs


def _fill_unknown_axes(jobs: list[JobRecord]) -> None:
    """Give a job that died before Hydra saved its config the axis values its siblings had.

    Its overrides say what it changed, but as option names (``index=exact``), while
    configured jobs record config values (``index.kind=flat``): translate through the
    siblings that used the same override, and take axes nobody overrode from the siblings
    that agree on them. Without this the dead job would sit in a cell of its own.
    """
    configured = [j for j in jobs if j.config]
    given = {id(j): {_key_of(o): _value_of(o) for o in j.overrides} for j in jobs}
    for job in jobs:
        if job.config:
            continue
        mine = given[id(job)]
        for a in AXES:
            if a in mine:
                seen = {c.axes[a] for c in configured if given[id(c)].get(a) == mine[a]}
            else:
                seen = {c.axes[a] for c in configured if a not in given[id(c)]}
            if len(seen) == 1:
                job.axes[a] = seen.pop()


# --- per-job quality and cost ------------------------------------------------------------


def _dataset_of(key: str) -> str | None:
    parts = key.split("/", 2)
    return parts[1] if len(parts) == 3 else None


def _name_of(key: str) -> str:
    parts = key.split("/", 2)
    return parts[2] if len(parts) == 3 else key


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _is_sts(job: JobRecord) -> bool:
    """STS jobs score pairs: no candidates to rescore, no index to search."""
    return _get(job.config, "data", "task") == "sts"


def _precision_tag(job: JobRecord) -> str | None:
    q = job.config.get("quantization") or {}
    emb = q.get("embeddings")
    if not emb or emb == "float32":
        return None
    mult = int(q.get("rescore_multiplier") or 0)
    return f"{emb}+rescore{mult}" if mult and not _is_sts(job) else str(emb)


def _dim_tag(job: JobRecord) -> str | None:
    d = job.config.get("dimension") or {}
    if not d.get("size") or d.get("method") not in ("truncate", "pca"):
        return None
    return f"pca{int(d['size'])}" if d["method"] == "pca" else str(int(d["size"]))


def variant_tags(job: JobRecord) -> list[str]:
    """The ``@`` suffixes this job's configuration selects: truncated or PCA dimension,
    embedding precision, ANN index kind (in the order the evaluation code would combine them)."""
    kind = None if _is_sts(job) else _index_tag(job.config)
    return [t for t in (_dim_tag(job), _precision_tag(job), kind) if t]


def quality_of(
    job: JobRecord, metric: str | None = None, *, variant_aware: bool = True
) -> tuple[str | None, float]:
    """The job's quality: ``(key used, value)``.

    ``metric`` (default: the job's ``monitor``) names the base key, e.g.
    ``test/scifact/ndcg@10``. The monitor is the float32, full-dimension, exact-search
    number, identical for every dimension/quantization/index cell of a model, so with
    ``variant_aware`` the key of the variant the job actually configured is used instead
    (``ndcg@10@128``, ``ndcg@10@int8``, ``ndcg@10@hnsw``). When a job sets several
    variants and no combined key exists, the worst of them is taken: the deployed system
    pays every loss at once, so the best single one would flatter it.
    """
    base = metric or job.monitor
    if base is None:
        return None, math.nan
    value = job.metrics.get(base, math.nan)
    if not variant_aware:
        return base, value
    present = set(base.split("@"))
    tags = [t for t in variant_tags(job) if t not in present]
    if not tags:
        return base, value
    combined = base + "".join(f"@{t}" for t in tags)
    if len(tags) > 1 and combined in job.metrics:
        return combined, job.metrics[combined]
    for size in range(len(tags) - 1, 1, -1):  # the largest combination measured together (dim + precision)
        for combo in itertools.combinations(tags, size):
            key = base + "".join(f"@{t}" for t in combo)
            if key in job.metrics:
                rest = [t for t in tags if t not in combo]
                tags = [key.removeprefix(f"{base}@")] + rest  # scored as one variant with the rest
                break
        else:
            continue
        break
    singles = [(f"{base}@{t}", job.metrics[f"{base}@{t}"]) for t in tags if f"{base}@{t}" in job.metrics]
    if not singles:
        return base, value
    if len(singles) == 1:
        return singles[0]
    finite = [s for s in singles if math.isfinite(s[1])]
    if not finite:
        return singles[0]
    pick = min if job.monitor_mode == "max" else max
    worst = pick(finite, key=lambda s: s[1])
    return f"worst of ({', '.join(k for k, _ in singles)})", worst[1]


def throughput_of(job: JobRecord) -> float:
    """Encode throughput (texts or corpus documents per second), averaged over splits."""
    keys = [k for k in job.metrics if k.endswith(THROUGHPUT_SUFFIXES)]
    same = [k for k in keys if _dataset_of(k) == job.axes.get("data")] or keys
    vals = _finite(job.metrics[k] for k in same)
    return statistics.fmean(vals) if vals else math.nan


def _index_cost(job: JobRecord, stem: str) -> float:
    """``<stem>@<kind>`` for the job's own index kind, else the largest one reported."""
    kind = _index_tag(job.config)
    hits = {
        _name_of(k).split("@", 1)[1]: v for k, v in job.metrics.items() if _name_of(k).startswith(stem + "@")
    }
    if kind in hits:
        return hits[kind]
    vals = _finite(hits.values())
    return max(vals) if vals else math.nan


def memory_mb_of(job: JobRecord) -> float:
    """Index memory of the cell as deployed. An exact (flat) index stores the vectors alone,
    so a cell with a smaller dimension or precision needs the measured float32 flat index
    scaled by its bytes per vector; other index kinds report what they measured."""
    mb = _index_cost(job, "index_total_mb")
    if _get(job.config, "index", "kind") != "flat" or not math.isfinite(mb):
        return mb
    full = {_name_of(k): v for k, v in job.metrics.items()}.get("bytes_per_vector@float32", math.nan)
    stored = bytes_per_vector_of(job)
    if math.isfinite(full) and full > 0 and math.isfinite(stored):
        return mb * stored / full
    return mb


def latency_ms_of(job: JobRecord) -> float:
    return _index_cost(job, "index_latency_p50_ms")


def bytes_per_vector_of(job: JobRecord) -> float:
    """Stored bytes per document vector at the job's precision and (truncated) dimension."""
    names = {_name_of(k): v for k, v in job.metrics.items()}
    full = names.get("bytes_per_vector@float32", math.nan)
    tag = _precision_tag(job)
    value = names.get(f"bytes_per_vector@{tag}", math.nan) if tag else full
    dim = _dim_tag(job)
    size = int(dim.removeprefix("pca")) if dim else 0
    if dim and math.isfinite(full) and full > 0 and size < full / 4:
        value *= size / (full / 4)  # the pipeline reports full-width sizes; truncation / PCA scales them
    return value


# --- cells, ranking, Pareto ---------------------------------------------------------------


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
        vals = _finite(self.qualities)
        return statistics.fmean(vals) if vals else math.nan

    @property
    def quality_std(self) -> float:
        """Sample standard deviation over seeds (ddof=1); NaN with fewer than two."""
        vals = _finite(self.qualities)
        return statistics.stdev(vals) if len(vals) > 1 else math.nan

    @property
    def data(self) -> str:
        return self.axes.get("data", "?")

    def describe(self) -> str:
        """Every axis, plus the extra overrides that differ between cells (not e.g. debug=fast)."""
        parts = [f"{a}={self.axes[a]}" for a in AXES if a in self.axes]
        return ", ".join(parts + list(self.shown_extras))


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
        if not (math.isfinite(x) and math.isfinite(y)):
            flags.append(False)
            continue
        dominated = any(
            j != i and math.isfinite(a) and math.isfinite(b) and a >= x and b >= y and (a > x or b > y)
            for j, (a, b) in enumerate(pts)
        )
        flags.append(not dominated)
    return flags


def _mark_pareto(rows: list[CellRow]) -> None:
    for data in dict.fromkeys(r.data for r in rows):
        group = [r for r in rows if r.data == data]
        for attr, flag, maximize_x in (
            ("throughput", "pareto_throughput", True),
            ("memory_mb", "pareto_memory", False),
        ):
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
    for job in jobs:
        cells[job.cell_key].append(job)

    encoder_speed: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for job in jobs:
        if job.ok and math.isfinite(t := throughput_of(job)):
            encoder_speed[_encoder_key(job)].append(t)

    rows: list[CellRow] = []
    for cell_jobs in cells.values():
        ok = [j for j in cell_jobs if j.ok]
        first = (ok or cell_jobs)[0]
        key, _ = quality_of(first, metric, variant_aware=variant_aware)
        row = CellRow(
            axes={a: first.axes.get(a, "?") for a in AXES},
            extras=first.extras,
            mode=mode or first.monitor_mode,
            quality_key=key,
            qualities=[quality_of(j, metric, variant_aware=variant_aware)[1] for j in ok],
            seeds=[j.seed for j in ok],
            jobs=[j.name for j in cell_jobs],
            n_failed=len(cell_jobs) - len(ok),
        )
        own = _finite(throughput_of(j) for j in ok)
        if own:
            row.throughput = statistics.fmean(own)
        elif ok and (shared := _finite(v for j in ok for v in encoder_speed.get(_encoder_key(j), []))):
            row.throughput, row.throughput_shared = statistics.fmean(shared), True
        for attr, fn in (
            ("memory_mb", memory_mb_of),
            ("latency_ms", latency_ms_of),
            ("bytes_per_vector", bytes_per_vector_of),
        ):
            vals = _finite(fn(j) for j in ok)
            setattr(row, attr, statistics.fmean(vals) if vals else math.nan)
        rows.append(row)

    ranked: list[CellRow] = []
    for data in sorted({r.data for r in rows}):
        group = [r for r in rows if r.data == data]
        scored = [r for r in group if math.isfinite(r.quality_mean)]
        scored.sort(
            key=lambda r: (
                -r.quality_mean if r.mode == "max" else r.quality_mean,
                -r.throughput if math.isfinite(r.throughput) else math.inf,
                r.describe(),
            )
        )
        for i, r in enumerate(scored, start=1):
            r.rank = i
        rest = sorted((r for r in group if not math.isfinite(r.quality_mean)), key=lambda r: r.describe())
        ranked += scored + rest
    _labels(ranked)
    _mark_pareto(ranked)
    return ranked


def _encoder_key(job: JobRecord) -> tuple[str, ...]:
    return (job.axes.get("model", "?"), job.axes.get("pooling", "?"), job.weights, job.axes.get("data", "?"))


# --- budget and recommendation ------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Cost limits a recommendation must meet; ``None`` means no limit on that cost."""

    max_latency_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None

    @property
    def empty(self) -> bool:
        return self.max_latency_ms is None and self.min_throughput is None and self.max_memory_mb is None

    def describe(self) -> str:
        parts = []
        if self.max_latency_ms is not None:
            parts.append(f"p50 query latency <= {self.max_latency_ms:g} ms")
        if self.min_throughput is not None:
            parts.append(f"encode throughput >= {self.min_throughput:g} texts/s")
        if self.max_memory_mb is not None:
            parts.append(f"index memory <= {self.max_memory_mb:g} MB")
        return ", ".join(parts) if parts else "no budget"

    def _checks(self, row: CellRow) -> list[tuple[str, float, float, bool, str]]:
        """(name, value, limit, value must be <= limit, unit) for each given limit."""
        out = []
        if self.max_latency_ms is not None:
            out.append(("p50 latency", row.latency_ms, self.max_latency_ms, True, "ms"))
        if self.min_throughput is not None:
            out.append(("encode throughput", row.throughput, self.min_throughput, False, "texts/s"))
        if self.max_memory_mb is not None:
            out.append(("index memory", row.memory_mb, self.max_memory_mb, True, "MB"))
        return out

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
            miss = (value - limit) if at_most else (limit - value)
            total += max(0.0, miss) / max(abs(limit), 1e-12)
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
        parts.append(
            f"encodes {r.throughput:.0f} texts/s"
            + (" (measured by a sibling job)" if r.throughput_shared else "")
        )
    if math.isfinite(r.memory_mb):
        parts.append(f"index {r.memory_mb:.1f} MB")
    if math.isfinite(r.latency_ms):
        parts.append(f"p50 latency {r.latency_ms:.3g} ms")
    if math.isfinite(r.bytes_per_vector):
        parts.append(f"{r.bytes_per_vector:.0f} bytes/vector")
    return "; ".join(parts) if parts else "no cost measured"


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
            out.append(
                Recommendation(
                    data,
                    budget,
                    None,
                    False,
                    0,
                    0,
                    f"No completed job reported a quality metric for {data}; nothing to recommend.",
                )
            )
            continue
        meeting = [r for r in candidates if not budget.violations(r)]
        best = candidates[0]
        if meeting:
            pick = meeting[0]
            text = (
                f"Use {pick.describe()}: {_quality_text(pick)}, the best of the {len(meeting)} of "
                f"{len(candidates)} configurations that meet the budget ({budget.describe()}). "
                f"Cost: {_cost_text(pick)}."
            )
            if budget.empty:
                text += " No budget was given, so this is the best quality regardless of cost."
            if pick is not best:
                text += f" The best overall, {best.label} ({_fmt(best.quality_mean)}), is excluded: {'; '.join(budget.violations(best))}."
            if len(meeting) > 1:
                runner = meeting[1]
                spread = max(_finite([pick.quality_std, runner.quality_std]), default=math.nan)
                if math.isfinite(spread) and abs(pick.quality_mean - runner.quality_mean) <= spread:
                    text += (
                        f" The runner-up, {runner.label} ({_fmt(runner.quality_mean)}; {_cost_text(runner)}), "
                        f"is within one seed standard deviation ({_fmt(spread)}): the seeds cannot separate "
                        f"the two, so choose between them on cost."
                    )
            if pick.pareto_throughput is False and pick.pareto_memory is False:
                text += (
                    " Note: another configuration is at least as good and cheaper on each measured cost axis."
                )
            out.append(Recommendation(data, budget, pick, True, len(candidates), len(meeting), text))
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


# --- encode once, score many --------------------------------------------------------------


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
    combos: set[tuple[str, ...]] = set()
    measured = False
    for job in jobs:
        if not job.ok:
            continue
        for key, value in job.metrics.items():
            if not key.endswith("/n_texts_encoded"):
                continue
            measured = True
            ds = _dataset_of(key) or "?"
            per_dataset.setdefault(ds, 0)
            combos.add(_encoder_key(job)[:3])
            needed.add((*_encoder_key(job)[:3], ds))
            if math.isfinite(value) and value > 0:
                per_dataset[ds] += 1
    return EncodePasses(sum(per_dataset.values()), len(combos), len(needed), dict(per_dataset), measured)


# --- the whole report -----------------------------------------------------------------------


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
        out: dict[str, int] = defaultdict(int)
        for j in self.jobs:
            out[j.status] += 1
        return dict(out)

    @property
    def metric_description(self) -> str:
        keys = sorted({r.quality_key for r in self.rows if r.quality_key})
        how = f"--metric {self.metric}" if self.metric else "each job's monitor"
        return f"{how}; keys used: {', '.join(keys) if keys else 'none'}"


def sweep_group_for_dir(sweep_dir: str | Path) -> str:
    """The W&B group a multirun's job runs log to: ``sweep-<date>_<time>`` from the last two
    parts of the sweep folder (the rule of ``embedlab.run.sweep_id``; keep the two equal)."""
    return "sweep-" + "_".join(Path(sweep_dir).resolve().parts[-2:])


def sweep_id_for(jobs: Sequence[JobRecord], sources: Sequence[Path]) -> str:
    """The sweep's W&B group: the jobs' ``logger.wandb.group`` when they set one and agree,
    else the group the runner derives from the sweep folder (sweep_group_for_dir)."""
    groups = {_get(j.config, "logger", "wandb", "group") for j in jobs if j.config}
    groups.discard(None)
    if len(groups) == 1:
        return str(groups.pop())
    return sweep_group_for_dir(sources[0]) if sources else "sweep"


def _wandb_target(jobs: Sequence[JobRecord]) -> dict[str, Any]:
    for j in jobs:
        w = _get(j.config, "logger", "wandb")
        if isinstance(w, dict):
            return {
                "project": w.get("project") or "embedlab",
                "entity": w.get("entity"),
                "mode": w.get("mode") or "auto",
            }
    return {"project": "embedlab", "entity": None, "mode": "auto"}


def build_report(
    paths: str | Path | Sequence[str | Path],
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    budget: Budget | None = None,
    variant_aware: bool = True,
    running_window_s: float = RUNNING_WINDOW_S,
) -> SweepReport:
    """Scan, rank, mark Pareto fronts, recommend and count encode passes in one call."""
    sources = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    jobs = scan(sources, running_window_s=running_window_s)
    if not jobs:
        raise FileNotFoundError(
            f"no job folders (results.json or .hydra/) under {', '.join(map(str, sources))}"
        )
    budget = budget or Budget()
    rows = build_table(jobs, metric, mode=mode, variant_aware=variant_aware)
    report = SweepReport(
        sources=sources,
        sweep_id=sweep_id_for(jobs, sources),
        metric=metric,
        budget=budget,
        jobs=jobs,
        rows=rows,
        recommendations=recommend(rows, budget),
        encode=count_encode_passes(jobs),
        wandb=_wandb_target(jobs),
    )
    log.info(
        "Report over %d jobs (%s), %d configuration cells",
        len(jobs),
        ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())),
        len(rows),
    )
    return report
