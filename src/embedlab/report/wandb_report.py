"""The sweep report on W&B: a ``job_type="report"`` run in the sweep's group (tables, Pareto PNGs, HTML
page, recommendation) and a W&B Report, first as plain data (wandb_report.json, reviewable without
wandb-workspaces), then built from it."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.report.cells import CSV_COLUMNS, PARETO_COSTS, THROUGHPUT_SUFFIXES, markdown_table
from embedlab.report.recommend import SweepReport
from embedlab.report.scan import AXES, AXIS_FIELD
from embedlab.tracking.wandb_logger import choose_mode

if TYPE_CHECKING:  # pragma: no cover - typing only
    from wandb_workspaces.reports.v2 import Report as WandbReport

log = logging.getLogger(__name__)

# Cost name -> which metric keys measure it (scatter plots of quality against each).
_COST_KEYS = {
    "encode throughput": lambda k: k.endswith(THROUGHPUT_SUFFIXES),
    "index memory": lambda k: "/index_total_mb@" in k,
    "p50 latency": lambda k: "/index_latency_p50_ms@" in k,
}


@dataclass
class WandbSummary:  # the run log_to_wandb created (``finished`` is checked, not assumed)
    run_id: str
    run_dir: str
    mode: str
    group: str
    url: str | None
    finished: bool


def log_to_wandb(
    report: SweepReport,
    html: Path,
    plots: dict[str, Path],
    *,
    project: str | None = None,
    entity: str | None = None,
    mode: str = "auto",
    save_dir: str | Path | None = None,
) -> WandbSummary | None:
    """Log the report (its ``html`` page and Pareto ``plots``) as one ``job_type="report"`` run in the
    sweep's group. Offline unless a key and a reachable server exist (``choose_mode``); the run is
    always finished, even when logging fails."""
    resolved = choose_mode(mode)  # type: ignore[arg-type]
    if resolved == "disabled":
        log.info("W&B disabled: no summary run logged.")
        return None
    import wandb

    save_dir = Path(save_dir or os.environ.get("WANDB_DIR") or html.parent)
    save_dir.mkdir(parents=True, exist_ok=True)
    summary = report.as_dict()
    run = wandb.init(
        project=project or report.wandb.get("project") or "embedlab",
        entity=entity or report.wandb.get("entity"),
        group=report.sweep_id,
        job_type="report",
        name=f"report {report.sweep_id}",
        mode=resolved,
        dir=str(save_dir),
        tags=["report"],
        config={k: summary[k] for k in ("metric", "budget", "sources")},
        reinit="create_new",
    )
    exit_code = 1
    try:
        rows, jobs, recs = summary["rows"], summary["jobs"], summary["recommendations"]
        payload: dict[str, Any] = {
            "report/ranked": wandb.Table(columns=list(CSV_COLUMNS), data=[list(r.values()) for r in rows]),
            "report/jobs": wandb.Table(
                columns=list(jobs[0]) if jobs else ["name"], data=[list(j.values()) for j in jobs]
            ),
            "report/html": wandb.Html(html.read_text(encoding="utf-8")),
        }
        for front, png in plots.items():
            payload[f"report/pareto_{front}"] = wandb.Image(str(png), caption=f"quality vs {front}")
        run.log(payload)
        run.summary.update(
            {
                "report/recommendation": " ".join(r["text"] for r in recs),
                "report/met_budget": all(r["met_budget"] for r in recs),
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
    log.info("W&B summary run %s (%s) in group %s", run_id, resolved, report.sweep_id)
    url = url if resolved == "online" else None
    return WandbSummary(
        run_id, run_dir, resolved, report.sweep_id, url, bool(getattr(run, "_is_finished", True))
    )


def _job_panels(report: SweepReport, max_panels_per_cost: int) -> list[dict[str, Any]]:
    """Quality-vs-cost scatter plots (the most often reported cost keys), parallel coordinates and
    bars over the job runs."""
    keys = [k for k in dict.fromkeys(r.quality_key for r in report.rows) if k and "worst of" not in k]
    q = (keys or [j.monitor for j in report.jobs if j.monitor] or [None])[0]
    compare = {"type": "RunComparer", "diff_only": "split"}
    if not q:
        return [compare]
    panels = []
    for name, wanted in _COST_KEYS.items():
        counts = Counter(k for j in report.jobs if j.ok for k in j.metrics if wanted(k))
        for key, _ in counts.most_common(max_panels_per_cost):
            title = f"{q} vs {name} ({key})"
            panels.append({"type": "ScatterPlot", "title": title, "x": {"summary": key}, "y": {"summary": q}})
    refs = [{"config": f"{a}.{AXIS_FIELD.get(a, 'name')}"} for a in AXES] + [{"summary": q}]
    columns = [{"type": "ParallelCoordinatesPlotColumn", "metric": ref} for ref in refs]
    parallel = {"type": "ParallelCoordinatesPlot", "title": "configuration -> quality", "columns": columns}
    bars = {"type": "BarPlot", "title": f"{q} by run", "metrics": [{"summary": q}]}
    return [*panels, parallel, bars, compare]


def wandb_report_spec(
    report: SweepReport,
    *,
    project: str | None = None,
    entity: str | None = None,
    max_panels_per_cost: int = 3,
) -> dict[str, Any]:
    """The W&B Report as plain data: the blocks of ``SweepReport.sections``, its Pareto section as
    panel grids over the job runs and over the report run. Elements carry their wandb-workspaces
    class in ``type``; ``{"summary"|"config": key}`` names a run summary metric or config key."""
    group, project = report.sweep_id, project or report.wandb.get("project") or "embedlab"
    entity = entity or report.wandb.get("entity")
    base = {"type": "Runset", "entity": entity or "", "project": project}
    runsets = {
        name: {**base, "name": f"{group} {name}", "filters": f"Group = '{group}' and JobType {op} 'report'"}
        for name, op in (("jobs", "!="), ("report", "="))
    }
    media = {
        "type": "MediaBrowser",
        "title": "Pareto fronts",
        "media_keys": [f"report/pareto_{f}" for f in PARETO_COSTS],
    }
    tables = [{"type": "WeavePanelSummaryTable", "table_name": f"report/{t}"} for t in ("ranked", "jobs")]
    blocks: list[dict[str, Any]] = []
    for kind, x in report.sections():
        if kind in ("ul", "notes"):
            blocks += [{"type": "P", "text": line} for line in x]
        elif kind == "table":
            blocks.append({"type": "MarkdownBlock", "text": markdown_table(*x)})
        elif kind == "pareto":
            panels = _job_panels(report, max_panels_per_cost)
            blocks.append({"type": "PanelGrid", "runsets": [runsets["jobs"]], "panels": panels})
            blocks.append({"type": "PanelGrid", "runsets": [runsets["report"]], "panels": [*tables, media]})
        else:
            blocks.append({"type": {"h1": "H1", "h2": "H2"}.get(kind, "P"), "text": x})
    head = {"project": project, "entity": entity, "title": f"Sweep {group}: decision report", "group": group}
    description = report.recommendations[0].text[:500] if report.recommendations else ""
    return {**head, "description": description, "runsets": runsets, "blocks": blocks}


def _build(wr: Any, node: Any) -> Any:
    """wandb-workspaces objects from a spec node (see wandb_report_spec)."""
    if isinstance(node, list):
        return [_build(wr, n) for n in node]
    if not isinstance(node, dict):
        return node
    if "summary" in node or "config" in node:
        return wr.SummaryMetric(node["summary"]) if "summary" in node else wr.Config(node["config"])
    if not hasattr(wr, node["type"]):
        raise ValueError(f"unknown W&B Report element {node['type']!r}")
    return getattr(wr, node["type"])(**{k: _build(wr, v) for k, v in node.items() if k != "type"})


def build_wandb_report(spec: dict[str, Any]) -> WandbReport:
    """A ``wandb_workspaces.reports.v2.Report`` from wandb_report_spec (no network; only saving is)."""
    import wandb_workspaces.reports.v2 as wr

    # Without an entity the Report asks the W&B API for one: pass one so building stays offline
    # (the server resolves "" to the key's default entity on save).
    entity = spec["entity"] or os.environ.get("WANDB_ENTITY") or ""
    fields = {k: spec[k] for k in ("project", "title", "description")}
    return wr.Report(**fields, blocks=_build(wr, spec["blocks"]), entity=entity)


def publish_wandb_report(report_obj: WandbReport, *, mode: str = "auto") -> str | None:
    """Save the W&B Report to the server and return its URL; None (nothing sent) unless online."""
    if choose_mode(mode) != "online":  # type: ignore[arg-type]
        log.warning("W&B Report not published: no API key or server unreachable (spec in wandb_report.json).")
        return None
    report_obj.save()
    return str(report_obj.url)
