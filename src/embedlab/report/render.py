"""Write a SweepReport as report.md / .csv / .json / .html, jobs.csv and Pareto PNGs: beside the
sweep, no account, no network; the HTML embeds its plots so it travels as one file. W&B comes on top."""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from embedlab.console import progress
from embedlab.report.cells import CSV_COLUMNS, PARETO_COSTS, CellRow, markdown_table
from embedlab.report.recommend import SweepReport, build_report
from embedlab.report.wandb_report import (
    WandbSummary,
    build_wandb_report,
    log_to_wandb,
    publish_wandb_report,
    wandb_report_spec,
)
from embedlab.viz.pareto import ParetoPoint, pareto_html, plot_pareto

log = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1rem 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}
.rec{background:#f7f7ff;border-left:4px solid #557;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #eee} .note{color:#666;font-size:13px}
.plot{margin:1rem 0} summary{color:#666;font-size:13px;cursor:pointer}
"""


@dataclass
class ReportFiles:
    """Where write_report put things (``plots``: front -> PNG, absent when unmeasured)."""

    out_dir: Path
    markdown: Path
    csv: Path
    jobs_csv: Path
    html: Path
    json: Path
    plots: dict[str, Path] = field(default_factory=dict)


@dataclass
class ParetoPanels:
    """The points of one front ("throughput" or "memory"), one panel per dataset, and their axis labels."""

    panels: dict[str, list[ParetoPoint]]
    xlabel: str
    ylabels: dict[str, str]
    larger_is_better: bool


def _quality_text(r: CellRow, low: float, high: float) -> str:
    what = "95% CI" if math.isfinite(r.ci_low) else f"± std over {r.n_seeds} seeds"
    interval = f", {what} [{low:.4f}, {high:.4f}]" if math.isfinite(low) else ""
    return f"{r.quality_key or 'quality'} = {r.quality_mean:.4f}{interval}"


def pareto_panels(rows: Sequence[CellRow], front: str) -> ParetoPanels:
    """Quality vs the cost of ``front``, one panel per dataset; its best cell (ranked first) starred."""
    cost = PARETO_COSTS[front]
    panels: dict[str, list[ParetoPoint]] = {}
    ylabels: dict[str, str] = {}
    measured = [r for r in rows if math.isfinite(getattr(r, cost.attr)) and math.isfinite(r.quality_mean)]
    best = {}
    for r in sorted(measured, key=lambda r: r.rank or math.inf):
        best.setdefault(r.data, r)
    for r in measured:
        title = f"{r.data}: quality vs {front}"
        q, std = r.quality_mean, r.quality_std
        low, high = (r.ci_low, r.ci_high) if math.isfinite(r.ci_low) else (q - std, q + std)
        on_front, detail = (
            bool(getattr(r, f"pareto_{front}")),
            f"{r.describe()}\n{_quality_text(r, low, high)}",
        )
        point = ParetoPoint(
            getattr(r, cost.attr), q, low, high, on_front, r.label, bool(r.tied), best[r.data] is r, detail
        )
        panels.setdefault(title, []).append(point)
        ylabels.setdefault(title, r.quality_key or "quality")
    for title, pts in panels.items():  # a panel's labels name only what varies within that panel
        parts = [p.label.split(", ") for p in pts]
        shared = set.intersection(*map(set, parts)) if len(pts) > 1 else set()
        short = [
            ", ".join(x for x in ps if x not in shared) or p.label for p, ps in zip(pts, parts, strict=True)
        ]
        panels[title] = [p._replace(label=label) for p, label in zip(pts, short, strict=True)]
    return ParetoPanels(panels, f"{cost.name} ({cost.unit})", ylabels, cost.larger_is_better)


def pareto_plot(rows: Sequence[CellRow], front: str, path: str | Path) -> Path | None:
    """The PNG of :func:`pareto_panels` (None when no cell measured that cost)."""
    p = pareto_panels(rows, front)
    return plot_pareto(p.panels, path, xlabel=p.xlabel, ylabel=p.ylabels, larger_is_better=p.larger_is_better)


def _img(front: str, png: Path | None) -> str:
    if png is None:
        return f"<p class='note'>quality vs {front}: not measured by any job.</p>"
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return f"<p><img alt='quality vs {front}' src='data:image/png;base64,{data}'></p>"


def _pareto_html(rows: Sequence[CellRow], plots: Sequence[tuple[str, Path | None]]) -> str:
    """Each front as an interactive plotly chart (plotly.js inline once: the page works offline) with
    its PNG under "static image"; the PNG alone when plotly is not installed."""
    if find_spec("plotly") is None:
        return "\n".join(_img(c, png) for c, png in plots)
    out, js = [], True
    for front, png in plots:
        p = pareto_panels(rows, front)
        kw = {"xlabel": p.xlabel, "ylabel": p.ylabels, "larger_is_better": p.larger_is_better}
        div = pareto_html(p.panels, include_plotlyjs=js, **kw) if png else None
        if div is None:
            out.append(_img(front, None))
            continue
        js = False
        static = f"<details><summary>static image</summary>{_img(front, png)}</details>"
        out.append(f"<div class='plot'>{div}</div>{static}")
    return "\n".join(out)


def _html_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    rows = [f"<thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in header)}</tr></thead><tbody>"]
    rows += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body]
    return f"<table>{''.join(rows)}</tbody></table>"


# How each kind of SweepReport.sections() block is written, in Markdown and in HTML.
_MARKDOWN: dict[str, Callable[[Any], str]] = {
    "h1": "# {}".format,
    "h2": "## {}".format,
    "p": str,
    "rec": str,
    "ul": lambda lines: "\n".join(f"- {line}" for line in lines),
    "notes": lambda lines: "\n".join(f"_{line}_" for line in lines),
    "table": lambda table: markdown_table(*table),
    "pareto": lambda plots: "\n\n".join(
        f"![quality vs {c}]({p.name})" if p else f"_quality vs {c}: not measured by any job._"
        for c, p in plots
    ),
}
_HTML: dict[str, Callable[[Any], str]] = {
    "h1": lambda x: f"<h1>{html.escape(x)}</h1>",
    "h2": lambda x: f"<h2>{html.escape(x)}</h2>",
    "p": lambda x: f"<p>{html.escape(x)}</p>",
    "rec": lambda x: f"<p class='rec'>{html.escape(x)}</p>",
    "ul": lambda lines: "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>",
    "notes": lambda lines: "".join(f"<p class='note'>{html.escape(line)}</p>" for line in lines),
    "table": lambda table: _html_table(*table),
}


def render_markdown(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    return "\n\n".join(_MARKDOWN[kind](x) for kind, x in report.sections(plots)) + "\n"


def render_html(report: SweepReport, plots: dict[str, Path] | None = None) -> str:
    """A single self-contained page: inline CSS, interactive plots with plotly.js inline, PNGs as
    base64 data URIs."""
    head = f"<meta charset='utf-8'><title>Sweep report: {html.escape(report.sweep_id)}</title><style>{_CSS}</style>"
    html_of = {**_HTML, "pareto": lambda plots: _pareto_html(report.rows, plots)}
    body = "\n".join(html_of[kind](x) for kind, x in report.sections(plots))
    return f"<!DOCTYPE html><html><head>{head}</head><body>\n{body}\n</body></html>"


def _write_csv(path: Path, records: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: "" if rec.get(k) is None else rec[k] for k in columns} for rec in records)


def write_report(report: SweepReport, out_dir: str | Path | None = None) -> ReportFiles:
    """Write report.md, report.csv (ranked cells), jobs.csv (every job), report.json,
    report.html and pareto_<cost>.png into ``out_dir`` (default ``<first source>/report``)."""
    out = Path(out_dir) if out_dir is not None else report.sources[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    fronts = progress(PARETO_COSTS, desc="pareto plots", unit="plot")
    plots = {c: p for c in fronts if (p := pareto_plot(report.rows, c, out / f"pareto_{c}.png"))}
    names = ("report.md", "report.csv", "jobs.csv", "report.html", "report.json")
    files = ReportFiles(out, *(out / n for n in names), plots=plots)
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
    out_dir: str | Path | None = None,
    wandb: bool = False,
    wandb_project: str | None = None,
    wandb_entity: str | None = None,
    wandb_mode: str | None = None,
    publish_wandb: bool = False,
    **options: Any,
) -> ReportOutcome:
    """Build the report (``options`` go to build_report), write the files and the W&B Report spec,
    and when asked log the W&B summary run and publish the Report (needs wandb-workspaces, online)."""
    report = build_report(paths, **options)
    outcome = ReportOutcome(report, write_report(report, out_dir))
    spec = wandb_report_spec(report, project=wandb_project, entity=wandb_entity)
    outcome.wandb_report_spec = outcome.files.out_dir / "wandb_report.json"
    outcome.wandb_report_spec.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    mode = wandb_mode or report.wandb.get("mode") or "auto"
    if wandb:
        where = {"project": wandb_project, "entity": wandb_entity, "mode": mode}
        outcome.wandb_run = log_to_wandb(report, outcome.files.html, outcome.files.plots, **where)
    if publish_wandb and find_spec("wandb_workspaces") is None:
        log.warning(
            "wandb-workspaces is not installed: W&B Report not published (spec in wandb_report.json)."
        )
    elif publish_wandb:
        outcome.wandb_report_url = publish_wandb_report(build_wandb_report(spec), mode=mode)
    return outcome
