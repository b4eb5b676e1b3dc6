"""Find a sweep's jobs and read each into a JobRecord, whatever became of it: a finished job leaves
results.json, a dead one a log, error.txt or a line in the launcher's lost_jobs.json, a never-started
one only its place in the sweep's plan."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from embedlab.console import progress
from embedlab.eval.variants import Cell, deployed, read_cells

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "running", "not_started"]
Mode = Literal["max", "min"]
Planner = Callable[[Path], "list[list[str]] | None"]  # multirun folder -> each planned job's overrides

# The axes a sweep varies (a "cell" is one value of each, seeds aside) and the config field naming
# each value where it is not "name"; the index is read from the recorded cells first.
AXES: tuple[str, ...] = ("model", "pooling", "dimension", "quantization", "index", "fusion", "data")
AXIS_FIELD = {"pooling": "mode", "index": "kind"}
# Override keys that say where outputs go or how a job ran, never what was measured.
_NOT_A_CELL_KEY = re.compile(r"^(hydra\.|paths\.|seed$|redo$|ckpt_path$)")
RUNNING_WINDOW_S = 600.0  # a job folder without results.json written this recently is still running
# Files that may say why a job died: error.txt (ReportCallback.on_job_end), Hydra's job log, launcher
# stdout/stderr. Most specific first: an OOM kill or a scheduler limit explains more than a warning.
_LOG_GLOBS: tuple[str, ...] = ("error.txt", "*.log", "*.err", "*.out")
_FATAL = re.compile(
    r"\bKilled\b|out of memory|\bOOM\b|DUE TO TIME LIMIT|CANCELLED|Segmentation fault|core dumped", re.I
)
_ERROR = re.compile(r"\b\w*(Error|Exception)\b|\bTraceback\b|\[ERROR\]|\bFAILED\b")
_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\[[^\]]*\]\[[A-Z]+\] - ")
_JOB_NUM = re.compile(r"^(\d+)_")
LOST_JOBS_FILE = "lost_jobs.json"  # written by embedlab's submitit launchers


@dataclass
class JobRecord:
    """One job of a sweep (or one run folder). ``extras``: its other overrides (``objective.lr=2e-5``),
    so cells differing only there are not merged; a ``null`` metric is NaN."""

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
    cells: list[Cell] = field(default_factory=list)

    @property
    def cell_key(self) -> tuple[str, ...]:
        return tuple(self.axes.get(a, "?") for a in AXES) + self.extras

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def deployed(self) -> list[Cell]:
        """The variant cells the job's configuration deploys (see ``eval.variants.deployed``)."""
        return deployed(self.cells)

    def record(self) -> dict[str, Any]:
        """The job as plain values: a row of jobs.csv, report.json and the W&B job table."""
        head = {k: getattr(self, k) for k in ("num", "name", "status", "reason")}
        tail = {"seed": self.seed, "overrides": " ".join(self.overrides), "path": str(self.path)}
        return {**head, **{a: self.axes.get(a) for a in AXES}, **tail}


def get(d: Any, *path: str, default: Any = None) -> Any:
    """``d[path[0]][path[1]]...`` or ``default`` when any step is missing."""
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _parse(overrides: Sequence[str]) -> dict[str, str]:
    """``["+model=a", "~x"]`` -> ``{"model": "a", "x": ""}``."""
    return {_key(o): o.partition("=")[2] for o in overrides}


def _extras(overrides: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(o for o in overrides if _key(o) not in AXES and not _NOT_A_CELL_KEY.match(_key(o))))


def _axes_from(config: dict[str, Any], overrides: Sequence[str], cells: Sequence[Cell]) -> dict[str, str]:
    """Axis values from the resolved config (the index as the recorded cells name it), else the overrides."""
    found = {a: get(config, a, AXIS_FIELD.get(a, "name")) for a in AXES}
    index = next((c.index for c in deployed(cells) if c.index), None)
    if index is None and "index" in config:
        index = found["index"] or "none"
    if config and found["fusion"] is None:  # results from before hybrids existed: dense alone
        found["fusion"] = "none"
    found["index"], given = index, _parse(overrides)
    axes = {a: str(found[a] if found[a] is not None else given.get(a, "?")) for a in AXES}
    # A model without an axis (bm25: sweep_ignores) shows "-" there: one row, not one per default value.
    return axes | {a: "-" for a in get(config, "model", "sweep_ignores") or () if a in axes}


def _tail(path: Path, n_bytes: int = 8192) -> list[str]:
    """The non-blank lines of the last ``n_bytes`` of a file ([] when unreadable)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - n_bytes))
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
    """Why a job folder has no results.json: ``failed`` with the telling log line, or ``running``
    if it has none and wrote within ``running_window_s`` (else its last line is the best clue)."""
    logs = [p for g in _LOG_GLOBS for p in sorted(job_dir.glob(g)) if p.is_file()]
    error_file = _tail(job_dir / "error.txt")
    lines = [line for p in logs if p.name != "error.txt" for line in _tail(p)]
    for source, pattern in ((error_file, _ERROR), (lines, _FATAL), (lines, _ERROR)):
        hit = next((line for line in reversed(source) if pattern.search(line)), None)
        if hit is not None:
            return "failed", _clean(hit)
    stamps = [p.stat().st_mtime for p in [job_dir, *logs] if p.exists()]
    age = (time.time() if now is None else now) - max(stamps) if stamps else math.inf
    if age < running_window_s:
        return "running", f"no results.json yet (folder written {age:.0f} s ago)"
    if lines:
        return "failed", f"no results.json; log ends: {_clean(lines[-1])}"
    return "failed", "no results.json and no log"


def load_yaml(path: Path) -> Any:
    """A YAML file's content, or None when it is missing or broken."""
    import yaml  # imported here to keep `report.py --help` fast

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None


def _read_payload(job_dir: Path, now: float | None, running_window_s: float) -> tuple[Status, str, dict]:
    results = job_dir / "results.json"
    if not results.is_file():
        return *diagnose(job_dir, now=now, running_window_s=running_window_s), {}
    try:
        payload = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return "failed", f"unreadable results.json ({exc.__class__.__name__}: {exc})", {}
    if payload.get("status") != "failed":
        return "ok", "", payload
    err = payload.get("error") or {}  # written by embedlab.jobs when the job raised
    return "failed", _clean(f"{err.get('type', 'Error')}: {err.get('message', '')}".splitlines()[0]), payload


def _job_num(path: Path) -> int | None:
    m = _JOB_NUM.match(path.name)
    return int(m.group(1)) if m else None


def _order(num: int | None, name: str) -> tuple[int, str]:  # numbered jobs first, in sweep order
    return (num if num is not None else 1 << 30, name)


def read_job(
    job_dir: str | Path, *, now: float | None = None, running_window_s: float = RUNNING_WINDOW_S
) -> JobRecord:
    """One job folder -> a JobRecord (never raises on a broken job: that is what it records)."""
    job_dir = Path(job_dir)
    loaded = load_yaml(job_dir / ".hydra" / "overrides.yaml")
    # No .hydra/ (killed before Hydra wrote it): the folder name is `<num>_<override_dirname>`.
    rest = _JOB_NUM.sub("", job_dir.name) if _JOB_NUM.match(job_dir.name) else ""
    guessed = tuple(o for o in rest.split(",") if "=" in o)
    overrides = tuple(str(o) for o in loaded) if isinstance(loaded, list) else guessed
    status, reason, payload = _read_payload(job_dir, now, running_window_s)
    meta = dict(payload.get("meta") or {})
    config = meta.pop("config", None)
    if not isinstance(config, dict):
        config = load_yaml(job_dir / ".hydra" / "config.yaml")
        config = config if isinstance(config, dict) else {}
    meta.pop("eval", None)  # per-split details (worst pairs, ...) are not needed and can be large
    cells = read_cells(meta.get("cells"))
    seed = str(_parse(overrides).get("seed") if get(config, "seed") is None else get(config, "seed"))
    monitor, metrics = get(config, "monitor"), payload.get("metrics") or {}
    return JobRecord(
        path=job_dir,
        name=job_dir.name,
        status=status,
        reason=reason,
        num=_job_num(job_dir),
        overrides=overrides,
        axes=_axes_from(config, overrides, cells),
        seed=int(seed) if seed.lstrip("-").isdigit() else None,
        weights=str(get(config, "weights", "name", default="fp32")),
        extras=_extras(overrides),
        metrics={str(k): float(v) if isinstance(v, int | float) else math.nan for k, v in metrics.items()},
        monitor=str(monitor) if monitor is not None and "${" not in str(monitor) else None,
        monitor_mode="min" if get(config, "monitor_mode") == "min" else "max",
        config=config,
        meta=meta,
        cells=cells,
    )


def _job_dirs(sweep: Path) -> list[Path]:
    def is_job(p: Path) -> bool:
        return (p / "results.json").is_file() or (p / ".hydra").is_dir() or _job_num(p) is not None

    return sorted(
        (p for p in sweep.iterdir() if p.is_dir() and is_job(p)), key=lambda p: _order(_job_num(p), p.name)
    )


def find_job_dirs(root: str | Path) -> list[Path]:
    """Job folders under ``root``: itself if a run folder, its job subfolders if a multirun
    folder, or the jobs of every multirun (else every run folder) found below it."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    is_run = (root / "results.json").is_file() or (root / ".hydra").is_dir()
    if is_run and not (root / "multirun.yaml").exists():
        return [root]
    sweeps = [root] if _job_dirs(root) else sorted(p.parent for p in root.rglob("multirun.yaml"))
    found = [job for sweep in sweeps for job in _job_dirs(sweep)]
    return found or sorted({p.parent for p in root.rglob("results.json")})


def lost_jobs(multirun_dir: str | Path) -> dict[int, str]:
    """{job number: why} for jobs the launcher saw die without returning (killed, OOM, time limit)."""
    path, raw = Path(multirun_dir) / LOST_JOBS_FILE, {}
    try:
        raw = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        log.warning("Ignoring unreadable %s: %s", path, exc)
    return {int(num): f"lost (submitit job {v.get('job_id')}): {v.get('reason')}" for num, v in raw.items()}


def _unstarted(root: Path, plan: list[list[str]], present: set[int], lost: dict[int, str]) -> list[JobRecord]:
    """Planned jobs without a folder: never started, or lost by the launcher before writing one."""
    out = []
    for num in sorted(set(range(len(plan))) - present):
        ovs = tuple(o for o in plan[num] if not _key(o).startswith("hydra."))
        name = f"{num}_{','.join(sorted(ovs))}"
        status: Status = "failed" if num in lost else "not_started"
        reason = lost.get(num, "planned in multirun.yaml but no job folder (sweep stopped before it)")
        out.append(
            JobRecord(
                root / name, name, status, reason, num, ovs, _axes_from({}, ovs, []), extras=_extras(ovs)
            )
        )
    return out


def scan(
    paths: str | Path | Sequence[str | Path],
    *,
    running_window_s: float = RUNNING_WINDOW_S,
    now: float | None = None,
    planner: Planner | None = None,
) -> list[JobRecord]:
    """Every job under one or more multirun / run folders, failed ones included, plus the
    never-started ones of a sweep whose plan ``planner`` can expand."""
    roots = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    jobs: list[JobRecord] = []
    seen: set[Path] = set()
    for root in roots:
        dirs = [d for d in find_job_dirs(root) if d.resolve() not in seen]
        seen.update(d.resolve() for d in dirs)
        bar = progress(dirs, desc=f"read jobs of {root.name}", unit="job", disable=len(dirs) < 2)
        root_jobs = [read_job(d, now=now, running_window_s=running_window_s) for d in bar]
        lost = lost_jobs(root)
        for job in root_jobs:  # a folder the killed job left: the launcher knows why better than its log
            if job.num in lost and job.status != "ok":
                job.status, job.reason = "failed", lost[job.num]
        plan = planner(root) if planner is not None and (root / "multirun.yaml").exists() else None
        if plan is not None:
            root_jobs += _unstarted(root, plan, {j.num for j in root_jobs if j.num is not None}, lost)
            root_jobs.sort(key=lambda j: _order(j.num, j.name))
        jobs += root_jobs
    _fill_unknown_axes(jobs)
    return jobs


def _fill_unknown_axes(jobs: list[JobRecord]) -> None:
    """Give a job that died before Hydra saved its config the axis values of siblings with the same
    overrides (which name options, ``index=exact``, where configs hold values, ``flat``), so the
    dead job does not sit in a cell of its own."""
    configured = [j for j in jobs if j.config]
    given = {id(j): _parse(j.overrides) for j in jobs}
    for job in (j for j in jobs if not j.config):
        for a in AXES:
            seen = {c.axes[a] for c in configured if given[id(c)].get(a) == given[id(job)].get(a)}
            if len(seen) == 1:
                job.axes[a] = seen.pop()


def sweep_group_for_dir(sweep_dir: str | Path) -> str:
    """The W&B group of a multirun's job runs: ``sweep-<date>_<time>`` from the folder's last two
    parts (the rule of ``embedlab.config.specs`` sweep ids; keep the two equal)."""
    return "sweep-" + "_".join(Path(sweep_dir).resolve().parts[-2:])
