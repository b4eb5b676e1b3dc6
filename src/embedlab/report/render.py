"""Write a SweepReport as report.md / report.csv / jobs.csv / report.html / Pareto PNGs,
log it to W&B as a summary run of the sweep's group, and describe it as a W&B Report.

The files are the primary output: they live beside the sweep, need no account and no
network, and the HTML embeds its plots (base64 PNG) so it can be mailed or attached to
an issue as one file. W&B is optional on top. matplotlib and wandb are imported inside
the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from embedlab.report.aggregate import AXES, Budget, CellRow, Mode, SweepReport, build_report

if TYPE_CHECKING:  # pragma: no cover - typing only
    from wandb_workspaces.reports.v2 import Report as WandbReport

log = logging.getLogger(__name__)

Cost = Literal["throughput", "memory"]
# (row attribute, Pareto flag attribute, axis label, larger is better)
_COSTS: dict[str, tuple[str, str, str, bool]] = {
    "throughput": ("throughput", "pareto_throughput", "encode throughput (texts/s)", True),
    "memory": ("memory_mb", "pareto_memory", "index memory (MB)", False),
}
# Cost columns: (row attribute, header, format); shown only when some row has a value.
_COST_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("throughput", "encode texts/s", ".0f"),
    ("memory_mb", "index MB", ".2f"),
    ("latency_ms", "p50 ms", ".3g"),
    ("bytes_per_vector", "bytes/vector", ".0f"),
)
CSV_COLUMNS: tuple[str, ...] = (
    "rank", *AXES, "other", "quality_key", "quality_mean", "quality_std", "n_seeds", "n_failed", "n_nan",
    "throughput", "throughput_shared", "memory_mb", "latency_ms", "bytes_per_vector",
    "pareto_throughput", "pareto_memory", "seeds", "jobs",
)  # fmt: skip


@dataclass
class ReportFiles:
    """Where write_report put things (``plots`` maps cost -> PNG; absent when unmeasured)."""

    out_dir: Path
    markdown: Path
    csv: Path
    jobs_csv: Path
    html: Path
    json: Path
    plots: dict[str, Path] = field(default_factory=dict)


# --- tables ---------------------------------------------------------------------------


def _num(v: float) -> float | None:
    return v if isinstance(v, int | float) and math.isfinite(v) else None


def row_record(row: CellRow) -> dict[str, Any]:
    """One ranked-table row as plain values (NaN -> None): the CSV, JSON and W&B table row."""
    return {
        "rank": row.rank,
        **{a: row.axes.get(a) for a in AXES},
        "other": " ".join(row.extras),
        "quality_key": row.quality_key,
        "quality_mean": _num(row.quality_mean),
        "quality_std": _num(row.quality_std),
        "n_seeds": row.n_seeds,
        "n_failed": row.n_failed,
        "n_nan": row.n_nan,
        "throughput": _num(row.throughput),
        "throughput_shared": row.throughput_shared,
        "memory_mb": _num(row.memory_mb),
        "latency_ms": _num(row.latency_ms),
        "bytes_per_vector": _num(row.bytes_per_vector),
        "pareto_throughput": row.pareto_throughput,
        "pareto_memory": row.pareto_memory,
        "seeds": " ".join(str(s) for s in row.seeds),
        "jobs": " ".join(row.jobs),
    }


def job_records(report: SweepReport) -> list[dict[str, Any]]:
    """Every job with its status, so a failed or unstarted job is never silently absent."""
    return [
        {
            "num": j.num,
            "name": j.name,
            "status": j.status,
            "reason": j.reason,
            **{a: j.axes.get(a) for a in AXES},
            "seed": j.seed,
            "overrides": " ".join(j.overrides),
            "path": str(j.path),
        }
        for j in report.jobs
    ]


def _shown_costs(rows: Sequence[CellRow]) -> list[tuple[str, str, str]]:
    return [c for c in _COST_COLUMNS if any(math.isfinite(getattr(r, c[0])) for r in rows)]


def _flag(v: bool | None) -> str:
    return "yes" if v else ("no" if v is False else "")


def _cells(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    """The ranked table as header + string cells, shared by Markdown and HTML."""
    rows = report.rows
    varying = [a for a in AXES if len({r.axes.get(a) for r in rows}) > 1] or list(
        AXES
    )  # the rest: one line above
    show_other = len({r.extras for r in rows}) > 1
    costs = _shown_costs(rows)
    header = ["rank", *varying, *(["other"] if show_other else []), "quality", "± std", "seeds", "failed"]
    header += [h for _, h, _ in costs] + ["front: throughput", "front: memory"]
    body = []
    for r in rows:
        cells = [str(r.rank) if r.rank is not None else "-", *(r.axes.get(a, "?") for a in varying)]
        if show_other:
            cells.append(" ".join(r.extras))
        q = (
            format(r.quality_mean, ".4f")
            if math.isfinite(r.quality_mean)
            else ("NaN" if r.n_seeds else "failed")
        )
        if r.n_nan:
            q += f" ({r.n_nan} NaN)"
        cells += [
            q,
            format(r.quality_std, ".4f") if math.isfinite(r.quality_std) else "",
            str(r.n_seeds),
            str(r.n_failed or ""),
        ]
        for attr, _, spec in costs:
            v = getattr(r, attr)
            text = format(v, spec) if math.isfinite(v) else ""
            cells.append(text + ("*" if attr == "throughput" and r.throughput_shared and text else ""))
        cells += [_flag(r.pareto_throughput), _flag(r.pareto_memory)]
        body.append(cells)
    return header, body


def _constant_axes(report: SweepReport) -> str:
    """The axes every cell shares (left out of the table columns), e.g. ``data=scifact``."""
    rows = report.rows
    if len(rows) < 2:
        return ""
    return ", ".join(f"{a}={rows[0].axes.get(a)}" for a in AXES if len({r.axes.get(a) for r in rows}) == 1)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _problem_table(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    header = ["job", "status", "reason"]
    body = [[j.name, j.status, j.reason] for j in report.problem_jobs]
    return header, body


def _summary_lines(report: SweepReport) -> list[str]:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items()))
    shared = _constant_axes(report)
    return [
        f"Sources: {', '.join(str(s) for s in report.sources)}",
        *([f"Shared by every cell: {shared}"] if shared else []),
        f"Jobs: {len(report.jobs)} ({counts}); configuration cells: {len(report.rows)}",
        f"Quality: {report.metric_description} (variant keys follow each job's dimension / precision / index)",
        f"Budget: {report.budget.describe()}",
    ]


# --- plots ----------------------------------------------------------------------------


def plot_pareto(rows: Sequence[CellRow], cost: Cost, path: str | Path) -> Path | None:
    """Quality vs one cost, one panel per dataset; front points in red, joined by a step line.

    Returns None (and writes nothing) when no row has both a quality and that cost.
    Uses matplotlib's Agg canvas directly, so it never touches a GUI backend or pyplot's
    global state (safe inside a Hydra callback or a test process).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    attr, flag, xlabel, larger_better = _COSTS[cost]
    datasets: dict[str, list[CellRow]] = {}
    for r in rows:
        if math.isfinite(getattr(r, attr)) and math.isfinite(r.quality_mean):
            datasets.setdefault(r.data, []).append(r)
    if not datasets:
        return None
    fig = Figure(figsize=(6.4 * len(datasets), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, (data, pts) in zip(axes, datasets.items(), strict=True):
        for on_front, color, name in ((False, "0.6", "dominated"), (True, "tab:red", "Pareto front")):
            sel = [r for r in pts if bool(getattr(r, flag)) == on_front]
            if sel:
                ax.errorbar(
                    [getattr(r, attr) for r in sel],
                    [r.quality_mean for r in sel],
                    yerr=[r.quality_std if math.isfinite(r.quality_std) else 0.0 for r in sel],
                    fmt="o", color=color, label=name, capsize=3,
                )  # fmt: skip
        front = sorted((r for r in pts if getattr(r, flag)), key=lambda r: getattr(r, attr))
        if len(front) > 1:
            ax.plot(
                [getattr(r, attr) for r in front],
                [r.quality_mean for r in front],
                color="tab:red",
                lw=1,
                alpha=0.6,
            )
        for r in pts if len(pts) <= 12 else front:
            ax.annotate(
                r.label,
                (getattr(r, attr), r.quality_mean),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        xs = [getattr(r, attr) for r in pts]
        if min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel + (" (higher is better)" if larger_better else " (lower is better)"))
        ax.set_ylabel(pts[0].quality_key or "quality")
        ax.set_title(f"{data}: quality vs {cost}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# --- Markdown, HTML, CSV ------------------------------------------------------------------


def render_markdown(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    plots = plots or {}
    header, body = _cells(report)
    out = [f"# Sweep report: {report.sweep_id}", "", *(f"- {line}" for line in _summary_lines(report)), ""]
    out += ["## Recommendation", ""]
    for rec in report.recommendations:
        out += [rec.text, ""]
    out += ["## Ranked configurations", "", markdown_table(header, body), ""]
    notes = ["Quality is the mean over seeds; ± is the sample standard deviation (n-1)."]
    if any(r.throughput_shared for r in report.rows):
        notes.append(
            "`*` throughput measured by a job with the same model and pooling (this one read cached embeddings)."
        )
    notes.append(
        "front: on the Pareto front of quality vs that cost (no cell is at least as good and cheaper)."
    )
    out += [f"_{n}_" for n in notes] + [""]
    out += ["## Pareto fronts", ""]
    for cost in _COSTS:
        out.append(
            f"![quality vs {cost}]({plots[cost].name})"
            if cost in plots
            else f"_quality vs {cost}: not measured by any job._"
        )
        out.append("")
    out += ["## Encode once, score many", "", report.encode.summary(), ""]
    out += ["## Failed and unfinished jobs", ""]
    if report.problem_jobs:
        out += [markdown_table(*_problem_table(report)), ""]
    else:
        out += ["None: every job completed.", ""]
    return "\n".join(out)


def _html_table(
    header: Sequence[str], body: Sequence[Sequence[str]], *, highlight_first: bool = False
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = []
    for i, cells in enumerate(body):
        cls = ' class="pick"' if highlight_first and i == 0 else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1rem 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3} tr.pick td{background:#eaf6ea}
.rec{background:#f7f7ff;border-left:4px solid #557;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #eee} .note{color:#666;font-size:13px}
"""


def render_html(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    """A single self-contained page: inline CSS, plots as base64 PNG data URIs."""
    plots = plots or {}
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Sweep report: {e(report.sweep_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Sweep report: {e(report.sweep_id)}</h1><ul>",
        *(f"<li>{e(line)}</li>" for line in _summary_lines(report)),
        "</ul><h2>Recommendation</h2>",
        *(f"<p class='rec'>{e(rec.text)}</p>" for rec in report.recommendations),
        "<h2>Ranked configurations</h2>",
        _html_table(*_cells(report)),
        "<p class='note'>Quality: mean over seeds, ± sample standard deviation. "
        "* throughput measured by a sibling job (cached embeddings). "
        "front: on the Pareto front of quality vs that cost.</p>",
        "<h2>Pareto fronts</h2>",
    ]
    for cost in _COSTS:
        if cost in plots:
            data = base64.b64encode(Path(plots[cost]).read_bytes()).decode("ascii")
            parts.append(f"<p><img alt='quality vs {cost}' src='data:image/png;base64,{data}'></p>")
        else:
            parts.append(f"<p class='note'>quality vs {cost}: not measured by any job.</p>")
    parts += ["<h2>Encode once, score many</h2>", f"<p>{e(report.encode.summary())}</p>"]
    parts.append("<h2>Failed and unfinished jobs</h2>")
    parts.append(
        _html_table(*_problem_table(report)) if report.problem_jobs else "<p>None: every job completed.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _write_csv(path: Path, records: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in columns})


def report_summary(report: SweepReport) -> dict[str, Any]:
    """The machine-readable report (report.json): what a later script or W&B summary needs."""
    return {
        "sweep_id": report.sweep_id,
        "sources": [str(s) for s in report.sources],
        "metric": report.metric,
        "budget": {
            "max_latency_ms": report.budget.max_latency_ms,
            "min_throughput": report.budget.min_throughput,
            "max_memory_mb": report.budget.max_memory_mb,
        },  # fmt: skip
        "counts": report.counts,
        "recommendations": [
            {
                "data": r.data,
                "met_budget": r.met_budget,
                "choice": r.choice.describe() if r.choice else None,
                "n_candidates": r.n_candidates,
                "n_meeting": r.n_meeting,
                "text": r.text,
            }  # fmt: skip
            for r in report.recommendations
        ],
        "encode": {
            "passes": report.encode.passes,
            "encoder_combos": report.encode.encoder_combos,
            "needed": report.encode.needed,
            "per_dataset": report.encode.per_dataset,
            "measured": report.encode.measured,
            "held": report.encode.held,
        },  # fmt: skip
        "rows": [row_record(r) for r in report.rows],
        "jobs": job_records(report),
    }


def write_report(report: SweepReport, out_dir: str | Path | None = None) -> ReportFiles:
    """Write report.md, report.csv (ranked cells), jobs.csv (every job), report.json,
    report.html and pareto_<cost>.png into ``out_dir`` (default ``<first source>/report``)."""
    out = Path(out_dir) if out_dir is not None else report.sources[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    for cost in _COSTS:
        p = plot_pareto(report.rows, cost, out / f"pareto_{cost}.png")  # type: ignore[arg-type]
        if p is not None:
            plots[cost] = p
    files = ReportFiles(
        out_dir=out,
        markdown=out / "report.md",
        csv=out / "report.csv",
        jobs_csv=out / "jobs.csv",
        html=out / "report.html",
        json=out / "report.json",
        plots=plots,
    )
    files.markdown.write_text(render_markdown(report, plots), encoding="utf-8")
    _write_csv(files.csv, [row_record(r) for r in report.rows], CSV_COLUMNS)
    jobs = job_records(report)
    _write_csv(files.jobs_csv, jobs, list(jobs[0]) if jobs else ["name", "status", "reason"])
    files.html.write_text(render_html(report, plots), encoding="utf-8")
    files.json.write_text(json.dumps(report_summary(report), indent=2, default=str) + "\n", encoding="utf-8")
    log.info("Wrote the sweep report to %s", out)
    return files


# --- W&B ------------------------------------------------------------------------------------


@dataclass
class WandbSummary:
    """The summary run that log_to_wandb created (``finished`` is checked, not assumed)."""

    run_id: str
    run_dir: str
    mode: str
    group: str
    url: str | None
    finished: bool


def log_to_wandb(
    report: SweepReport,
    files: ReportFiles,
    *,
    project: str | None = None,
    entity: str | None = None,
    mode: str = "auto",
    save_dir: str | Path | None = None,
) -> WandbSummary | None:
    """Log the report as one ``job_type="report"`` run in the sweep's W&B group.

    The run carries the ranked table and the job list as W&B Tables, the Pareto PNGs, the
    HTML page, and the recommendation in its summary, so the sweep's group page shows the
    decision next to the job runs. Offline unless a key and a reachable server exist
    (``choose_mode``); the run is always finished, even when logging fails.
    """
    from embedlab.tracking.wandb_logger import choose_mode

    resolved = choose_mode(mode)  # type: ignore[arg-type]
    if resolved == "disabled":
        log.info("W&B disabled: no summary run logged.")
        return None
    import wandb

    save_dir = Path(save_dir or os.environ.get("WANDB_DIR") or files.out_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    summary = report_summary(report)
    run = wandb.init(
        project=project or report.wandb.get("project") or "embedlab",
        entity=entity or report.wandb.get("entity"),
        group=report.sweep_id,
        job_type="report",
        name=f"report {report.sweep_id}",
        mode=resolved,
        dir=str(save_dir),
        tags=["report"],
        config={"metric": report.metric, "budget": summary["budget"], "sources": summary["sources"]},
        reinit="create_new",
    )
    exit_code = 1
    try:
        rows = summary["rows"]
        jobs = summary["jobs"]
        payload: dict[str, Any] = {
            "report/ranked": wandb.Table(
                columns=list(CSV_COLUMNS), data=[[r[c] for c in CSV_COLUMNS] for r in rows]
            ),
            "report/jobs": wandb.Table(
                columns=list(jobs[0]) if jobs else ["name"], data=[list(j.values()) for j in jobs]
            ),
            "report/html": wandb.Html(files.html.read_text(encoding="utf-8")),
        }
        for cost, png in files.plots.items():
            payload[f"report/pareto_{cost}"] = wandb.Image(str(png), caption=f"quality vs {cost}")
        run.log(payload)
        run.summary.update(
            {
                "report/recommendation": " ".join(r["text"] for r in summary["recommendations"]),
                "report/met_budget": all(r["met_budget"] for r in summary["recommendations"]),
                "report/encode_passes": summary["encode"]["passes"],
                "report/encoder_combos": summary["encode"]["encoder_combos"],
                "report/n_jobs": len(jobs),
                "report/n_failed": sum(1 for j in jobs if j["status"] != "ok"),
            }
        )
        exit_code = 0
    finally:
        run_id, run_dir, url = run.id, str(run.dir), getattr(run, "url", None)
        run.finish(exit_code=exit_code)
    finished = bool(getattr(run, "_is_finished", True))
    log.info("W&B summary run %s (%s) in group %s", run_id, resolved, report.sweep_id)
    return WandbSummary(
        run_id, run_dir, resolved, report.sweep_id, url if resolved == "online" else None, finished
    )


def _key_counts(report: SweepReport, predicate) -> list[str]:
    seen: dict[str, int] = {}
    for j in report.jobs:
        if j.ok:
            for k in j.metrics:
                if predicate(k):
                    seen[k] = seen.get(k, 0) + 1
    return sorted(seen, key=lambda k: -seen[k])


def wandb_report_spec(
    report: SweepReport,
    *,
    project: str | None = None,
    entity: str | None = None,
    max_panels_per_cost: int = 3,
) -> dict[str, Any]:
    """The W&B Report of the sweep as plain data: title, the run sets, and block by block
    the text and panels. build_wandb_report turns it into wandb-workspaces objects; it is
    also written as wandb_report.json so the layout is reviewable without that package.

    Metric panels read run summaries (the per-job runs log every results.json key);
    config panels read the resolved Hydra config the job runs logged as hyperparameters.
    """
    quality = [
        k for k in dict.fromkeys(r.quality_key for r in report.rows) if k and not k.startswith("worst of")
    ]
    quality = quality or [k for k in {j.monitor for j in report.jobs if j.monitor} if k]
    q = quality[0] if quality else None
    costs = {
        "encode throughput": _key_counts(
            report, lambda k: k.endswith(("encode_texts_per_s", "encode_documents_per_s"))
        ),
        "index memory": _key_counts(report, lambda k: "/index_total_mb@" in k),
        "p50 latency": _key_counts(report, lambda k: "/index_latency_p50_ms@" in k),
    }
    config_cols = [
        "model.name",
        "pooling.mode",
        "dimension.name",
        "quantization.name",
        "index.kind",
        "data.name",
        "seed",
    ]
    panels: list[dict[str, Any]] = []
    if q:
        for name, keys in costs.items():
            for key in keys[:max_panels_per_cost]:
                panels.append(
                    {
                        "type": "ScatterPlot",
                        "title": f"{q} vs {name} ({key})",
                        "x": {"summary": key},
                        "y": {"summary": q},
                    }
                )
        panels.append(
            {
                "type": "ParallelCoordinatesPlot",
                "title": "configuration -> quality",
                "columns": [{"config": c} for c in config_cols] + [{"summary": q}],
            }
        )
        panels.append({"type": "BarPlot", "title": f"{q} by run", "metrics": [{"summary": q}]})
    panels.append({"type": "RunComparer", "diff_only": "split"})
    ranked_header, ranked_body = _cells(report)
    return {
        "project": project or report.wandb.get("project") or "embedlab",
        "entity": entity or report.wandb.get("entity"),
        "title": f"Sweep {report.sweep_id}: decision report",
        "description": report.recommendations[0].text[:500] if report.recommendations else "",
        "group": report.sweep_id,
        "runsets": {
            "jobs": {
                "name": f"{report.sweep_id} jobs",
                "filters": f"Group = '{report.sweep_id}' and JobType != 'report'",
            },
            "report": {
                "name": f"{report.sweep_id} report",
                "filters": f"Group = '{report.sweep_id}' and JobType = 'report'",
            },
        },
        "blocks": [
            {"type": "H1", "text": f"Sweep {report.sweep_id}"},
            *({"type": "P", "text": line} for line in _summary_lines(report)),
            {"type": "H2", "text": "Recommendation"},
            *({"type": "P", "text": rec.text} for rec in report.recommendations),
            {"type": "P", "text": report.encode.summary()},
            {"type": "H2", "text": "Ranked configurations"},
            {"type": "MarkdownBlock", "text": markdown_table(ranked_header, ranked_body)},
            {"type": "H2", "text": "Quality vs cost (job runs)"},
            {"type": "PanelGrid", "runset": "jobs", "panels": panels},
            {"type": "H2", "text": "Report run: tables and Pareto plots"},
            {
                "type": "PanelGrid",
                "runset": "report",
                "panels": [
                    {"type": "WeavePanelSummaryTable", "table_name": "report/ranked"},
                    {"type": "WeavePanelSummaryTable", "table_name": "report/jobs"},
                    {
                        "type": "MediaBrowser",
                        "title": "Pareto fronts",
                        "media_keys": [f"report/pareto_{c}" for c in _COSTS],
                    },
                ],
            },
        ],
    }


def build_wandb_report(spec: dict[str, Any]) -> WandbReport:
    """A ``wandb_workspaces.reports.v2.Report`` from wandb_report_spec (needs wandb-workspaces).

    Building touches no network; only ``publish_wandb_report`` (``Report.save()``) does.
    """
    import wandb_workspaces.reports.v2 as wr

    def metric(ref: dict[str, str]):
        return wr.Config(ref["config"]) if "config" in ref else wr.SummaryMetric(ref["summary"])

    def panel(p: dict[str, Any]):
        kind = p["type"]
        if kind == "ScatterPlot":
            return wr.ScatterPlot(title=p["title"], x=metric(p["x"]), y=metric(p["y"]))
        if kind == "ParallelCoordinatesPlot":
            cols = [wr.ParallelCoordinatesPlotColumn(metric=metric(c)) for c in p["columns"]]
            return wr.ParallelCoordinatesPlot(title=p["title"], columns=cols)
        if kind == "BarPlot":
            return wr.BarPlot(title=p["title"], metrics=[metric(m) for m in p["metrics"]])
        if kind == "RunComparer":
            return wr.RunComparer(diff_only=p["diff_only"])
        if kind == "WeavePanelSummaryTable":
            return wr.WeavePanelSummaryTable(table_name=p["table_name"])
        if kind == "MediaBrowser":
            return wr.MediaBrowser(title=p["title"], media_keys=list(p["media_keys"]))
        raise ValueError(f"unknown panel type {kind!r}")

    runsets = {
        key: wr.Runset(
            entity=spec["entity"] or "", project=spec["project"], name=rs["name"], filters=rs["filters"]
        )
        for key, rs in spec["runsets"].items()
    }
    blocks: list[Any] = []
    for b in spec["blocks"]:
        kind = b["type"]
        if kind in {"H1", "H2", "P"}:
            blocks.append(getattr(wr, kind)(text=b["text"]))
        elif kind == "MarkdownBlock":
            blocks.append(wr.MarkdownBlock(text=b["text"]))
        elif kind == "PanelGrid":
            blocks.append(
                wr.PanelGrid(runsets=[runsets[b["runset"]]], panels=[panel(p) for p in b["panels"]])
            )
        else:
            raise ValueError(f"unknown block type {kind!r}")
    kwargs: dict[str, Any] = {
        "project": spec["project"],
        "title": spec["title"],
        "description": spec["description"],
        "blocks": blocks,
    }
    # Report's default entity asks the W&B API for the user's entity: give one so that
    # building stays offline (the server resolves "" to the key's default entity on save).
    kwargs["entity"] = spec["entity"] or os.environ.get("WANDB_ENTITY") or ""
    return wr.Report(**kwargs)


def publish_wandb_report(report_obj: WandbReport, *, mode: str = "auto") -> str | None:
    """Save the W&B Report to the server and return its URL; None (nothing sent) unless online."""
    from embedlab.tracking.wandb_logger import choose_mode

    if choose_mode(mode) != "online":  # type: ignore[arg-type]
        log.warning(
            "W&B Report not published: no API key or server unreachable (the spec is in wandb_report.json)."
        )
        return None
    report_obj.save()
    return str(report_obj.url)


def wandb_workspaces_available() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("wandb_workspaces") is not None
    except (ImportError, ValueError):
        return False


# --- one call ----------------------------------------------------------------------------------


@dataclass
class ReportOutcome:
    report: SweepReport
    files: ReportFiles
    wandb_run: WandbSummary | None = None
    wandb_report_url: str | None = None
    wandb_report_spec: Path | None = None


def generate_report(
    paths: str | Path | Sequence[str | Path],
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    budget: Budget | None = None,
    out_dir: str | Path | None = None,
    wandb: bool = False,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    wandb_mode: str | None = None,
    publish_wandb: bool = False,
    variant_aware: bool = True,
    running_window_s: float | None = None,
) -> ReportOutcome:
    """Build the report, write the files and, when asked, the W&B summary run and Report.

    The W&B Report spec (wandb_report.json) is always written with the files; the Report
    object is built when wandb-workspaces is installed and published only if
    ``publish_wandb`` and W&B is online.
    """
    kwargs: dict[str, Any] = {
        "metric": metric,
        "mode": mode,
        "budget": budget,
        "variant_aware": variant_aware,
    }
    if running_window_s is not None:
        kwargs["running_window_s"] = running_window_s
    report = build_report(paths, **kwargs)
    files = write_report(report, out_dir)
    outcome = ReportOutcome(report, files)
    spec = wandb_report_spec(report, project=wandb_project, entity=wandb_entity)
    outcome.wandb_report_spec = files.out_dir / "wandb_report.json"
    outcome.wandb_report_spec.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    resolved_mode = wandb_mode or report.wandb.get("mode") or "auto"
    if wandb:
        outcome.wandb_run = log_to_wandb(
            report, files, project=wandb_project, entity=wandb_entity, mode=resolved_mode
        )
    if publish_wandb:
        if wandb_workspaces_available():
            outcome.wandb_report_url = publish_wandb_report(build_wandb_report(spec), mode=resolved_mode)
        else:
            log.warning(
                "wandb-workspaces is not installed: W&B Report not published (spec in %s).",
                outcome.wandb_report_spec,
            )
    return outcome
