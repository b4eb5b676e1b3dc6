"""Write a SweepReport as report.md / report.csv / jobs.csv / report.json / report.html / Pareto PNGs.

The files are the primary output: they live beside the sweep, need no account and no
network, and the HTML embeds its plots (base64 PNG) so it can be mailed or attached to
an issue as one file. W&B (``report/wandb_report.py``) is optional on top.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.report.cells import CSV_COLUMNS, PARETO_COSTS, CellRow, markdown_table, ranked_table
from embedlab.report.recommend import Budget, SweepReport, build_report
from embedlab.report.scan import Mode, Planner
from embedlab.report.wandb_report import WandbSummary, log_to_wandb, publish_spec, wandb_report_spec
from embedlab.viz.plots import ParetoPoint, plot_pareto

log = logging.getLogger(__name__)

_XLABELS = {"throughput": "encode throughput (texts/s)", "memory": "index memory (MB)"}
_NOTES = (
    "Quality is the mean over seeds; ± is the sample standard deviation (n-1).",
    "`*` throughput measured by a job with the same model and pooling (this one read cached embeddings).",
    "front: on the Pareto front of quality vs that cost (no cell is at least as good and cheaper).",
)
_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1rem 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3} tr.pick td{background:#eaf6ea}
.rec{background:#f7f7ff;border-left:4px solid #557;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #eee} .note{color:#666;font-size:13px}
"""


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


def _problem_table(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    return ["job", "status", "reason"], [[j.name, j.status, j.reason] for j in report.problem_jobs]


def pareto_plot(rows: Sequence[CellRow], cost: str, path: str | Path) -> Path | None:
    """Quality vs ``cost`` ("throughput" or "memory"), one panel per dataset (viz.plots.plot_pareto)."""
    attr, flag, larger = PARETO_COSTS[cost]
    panels: dict[str, list[ParetoPoint]] = {}
    ylabels: dict[str, str] = {}
    for r in rows:
        if math.isfinite(getattr(r, attr)) and math.isfinite(r.quality_mean):
            title = f"{r.data}: quality vs {cost}"
            point = ParetoPoint(
                getattr(r, attr), r.quality_mean, r.quality_std, bool(getattr(r, flag)), r.label
            )
            panels.setdefault(title, []).append(point)
            ylabels.setdefault(title, r.quality_key or "quality")
    return plot_pareto(panels, path, xlabel=_XLABELS[cost], ylabel=ylabels, larger_is_better=larger)


def render_markdown(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    plots = plots or {}
    out = [f"# Sweep report: {report.sweep_id}", "", *(f"- {line}" for line in report.summary_lines()), ""]
    out += ["## Recommendation", "", *(line for rec in report.recommendations for line in (rec.text, ""))]
    out += ["## Ranked configurations", "", markdown_table(*ranked_table(report.rows)), ""]
    shared = any(r.throughput_shared for r in report.rows)
    out += [f"_{n}_" for n in _NOTES if shared or not n.startswith("`*`")] + ["", "## Pareto fronts", ""]
    for cost in PARETO_COSTS:
        shown = f"![quality vs {cost}]({plots[cost].name})" if cost in plots else None
        out += [shown or f"_quality vs {cost}: not measured by any job._", ""]
    out += ["## Encode once, score many", "", report.encode.summary(), ""]
    out += ["## Failed and unfinished jobs", ""]
    problems = (
        markdown_table(*_problem_table(report)) if report.problem_jobs else "None: every job completed."
    )
    return "\n".join([*out, problems, ""])


def _html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    """A single self-contained page: inline CSS, plots as base64 PNG data URIs."""
    plots = plots or {}
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Sweep report: {e(report.sweep_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Sweep report: {e(report.sweep_id)}</h1><ul>",
        *(f"<li>{e(line)}</li>" for line in report.summary_lines()),
        "</ul><h2>Recommendation</h2>",
        *(f"<p class='rec'>{e(rec.text)}</p>" for rec in report.recommendations),
        "<h2>Ranked configurations</h2>",
        _html_table(*ranked_table(report.rows)),
        "<p class='note'>Quality: mean over seeds, ± sample standard deviation. "
        "* throughput measured by a sibling job (cached embeddings). "
        "front: on the Pareto front of quality vs that cost.</p>",
        "<h2>Pareto fronts</h2>",
    ]
    for cost in PARETO_COSTS:
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
    return "\n".join([*parts, "</body></html>"])


def _write_csv(path: Path, records: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in columns})


def write_report(report: SweepReport, out_dir: str | Path | None = None) -> ReportFiles:
    """Write report.md, report.csv (ranked cells), jobs.csv (every job), report.json,
    report.html and pareto_<cost>.png into ``out_dir`` (default ``<first source>/report``)."""
    out = Path(out_dir) if out_dir is not None else report.sources[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    plots = {c: p for c in PARETO_COSTS if (p := pareto_plot(report.rows, c, out / f"pareto_{c}.png"))}
    files = ReportFiles(out, out / "report.md", out / "report.csv", out / "jobs.csv", out / "report.html",
                        out / "report.json", plots)  # fmt: skip
    files.markdown.write_text(render_markdown(report, plots), encoding="utf-8")
    _write_csv(files.csv, [r.record() for r in report.rows], CSV_COLUMNS)
    jobs = [j.record() for j in report.jobs]
    _write_csv(files.jobs_csv, jobs, list(jobs[0]) if jobs else ["name", "status", "reason"])
    files.html.write_text(render_html(report, plots), encoding="utf-8")
    files.json.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n", encoding="utf-8")
    log.info("Wrote the sweep report to %s", out)
    return files


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
    planner: Planner | None = None,
) -> ReportOutcome:
    """Build the report, write the files and, when asked, the W&B summary run and Report.

    The W&B Report spec (wandb_report.json) is always written with the files; the Report
    is published only if ``publish_wandb``, wandb-workspaces is installed and W&B is online.
    """
    window = {} if running_window_s is None else {"running_window_s": running_window_s}
    report = build_report(paths, metric=metric, mode=mode, budget=budget, variant_aware=variant_aware,
                          planner=planner, **window)  # fmt: skip
    outcome = ReportOutcome(report, write_report(report, out_dir))
    spec = wandb_report_spec(report, project=wandb_project, entity=wandb_entity)
    outcome.wandb_report_spec = outcome.files.out_dir / "wandb_report.json"
    outcome.wandb_report_spec.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    resolved_mode = wandb_mode or report.wandb.get("mode") or "auto"
    if wandb:
        outcome.wandb_run = log_to_wandb(report, outcome.files.html, outcome.files.plots,
                                         project=wandb_project, entity=wandb_entity, mode=resolved_mode)  # fmt: skip
    if publish_wandb:
        outcome.wandb_report_url = publish_spec(spec, mode=resolved_mode)
    return outcome
