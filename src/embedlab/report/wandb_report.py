"""The sweep report on W&B: a summary run in the sweep's group, and a W&B Report of it.

``log_to_wandb`` logs one ``job_type="report"`` run beside the job runs (ranked table, job
list, Pareto PNGs, the HTML page, the recommendation in its summary). ``wandb_report_spec``
describes a W&B Report as plain data (written as wandb_report.json, reviewable without
wandb-workspaces); ``build_wandb_report`` turns it into wandb-workspaces objects. wandb
and wandb-workspaces are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.report.cells import CSV_COLUMNS, PARETO_COSTS, THROUGHPUT_SUFFIXES, markdown_table, ranked_table
from embedlab.report.recommend import SweepReport
from embedlab.tracking.wandb_logger import choose_mode

if TYPE_CHECKING:  # pragma: no cover - typing only
    from wandb_workspaces.reports.v2 import Report as WandbReport

log = logging.getLogger(__name__)

# The resolved config keys the job runs logged, as parallel-coordinates columns.
_CONFIG_COLUMNS = ("model.name", "pooling.mode", "dimension.name", "quantization.name", "index.kind",
                   "data.name", "seed")  # fmt: skip


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
    html: Path,
    plots: dict[str, Path],
    *,
    project: str | None = None,
    entity: str | None = None,
    mode: str = "auto",
    save_dir: str | Path | None = None,
) -> WandbSummary | None:
    """Log the report (its ``html`` page and Pareto ``plots``) as one ``job_type="report"`` run
    in the sweep's W&B group. Offline unless a key and a reachable server exist
    (``choose_mode``); the run is always finished, even when logging fails."""
    resolved = choose_mode(mode)  # type: ignore[arg-type]
    if resolved == "disabled":
        log.info("W&B disabled: no summary run logged.")
        return None
    import wandb

    save_dir = Path(save_dir or os.environ.get("WANDB_DIR") or html.parent)
    save_dir.mkdir(parents=True, exist_ok=True)
    summary = report.as_dict()
    run = wandb.init(project=project or report.wandb.get("project") or "embedlab",
                     entity=entity or report.wandb.get("entity"), group=report.sweep_id, job_type="report",
                     name=f"report {report.sweep_id}", mode=resolved, dir=str(save_dir), tags=["report"],
                     config={k: summary[k] for k in ("metric", "budget", "sources")}, reinit="create_new")  # fmt: skip
    exit_code = 1
    try:
        rows, jobs, recs = summary["rows"], summary["jobs"], summary["recommendations"]
        payload: dict[str, Any] = {
            "report/ranked": wandb.Table(columns=list(CSV_COLUMNS), data=[[r[c] for c in CSV_COLUMNS] for r in rows]),
            "report/jobs": wandb.Table(columns=list(jobs[0]) if jobs else ["name"], data=[list(j.values()) for j in jobs]),
            "report/html": wandb.Html(html.read_text(encoding="utf-8")),
        }  # fmt: skip
        for cost, png in plots.items():
            payload[f"report/pareto_{cost}"] = wandb.Image(str(png), caption=f"quality vs {cost}")
        run.log(payload)
        run.summary.update({
            "report/recommendation": " ".join(r["text"] for r in recs),
            "report/met_budget": all(r["met_budget"] for r in recs),
            "report/encode_passes": summary["encode"]["passes"],
            "report/encoder_combos": summary["encode"]["encoder_combos"],
            "report/n_jobs": len(jobs), "report/n_failed": sum(1 for j in jobs if j["status"] != "ok"),
        })  # fmt: skip
        exit_code = 0
    finally:
        run_id, run_dir, url = run.id, str(run.dir), getattr(run, "url", None)
        run.finish(exit_code=exit_code)
    log.info("W&B summary run %s (%s) in group %s", run_id, resolved, report.sweep_id)
    return WandbSummary(run_id, run_dir, resolved, report.sweep_id, url if resolved == "online" else None,
                        bool(getattr(run, "_is_finished", True)))  # fmt: skip


def _keys_by_frequency(report: SweepReport, wanted: Callable[[str], bool]) -> list[str]:
    """Metric keys of completed jobs that ``wanted`` accepts, the most often reported first."""
    seen: dict[str, int] = {}
    for k in (k for j in report.jobs if j.ok for k in j.metrics if wanted(k)):
        seen[k] = seen.get(k, 0) + 1
    return sorted(seen, key=lambda k: -seen[k])


def _job_panels(report: SweepReport, max_panels_per_cost: int) -> list[dict[str, Any]]:
    """Quality-vs-cost scatter plots, parallel coordinates and bars over the job runs."""
    quality = [
        k for k in dict.fromkeys(r.quality_key for r in report.rows) if k and not k.startswith("worst of")
    ]
    q = (quality or [j.monitor for j in report.jobs if j.monitor] or [None])[0]
    panels: list[dict[str, Any]] = []
    if q:
        costs = {
            "encode throughput": _keys_by_frequency(report, lambda k: k.endswith(THROUGHPUT_SUFFIXES)),
            "index memory": _keys_by_frequency(report, lambda k: "/index_total_mb@" in k),
            "p50 latency": _keys_by_frequency(report, lambda k: "/index_latency_p50_ms@" in k),
        }
        panels += [{"type": "ScatterPlot", "title": f"{q} vs {name} ({key})", "x": {"summary": key},
                    "y": {"summary": q}} for name, keys in costs.items() for key in keys[:max_panels_per_cost]]  # fmt: skip
        columns = [{"config": c} for c in _CONFIG_COLUMNS] + [{"summary": q}]
        panels.append(
            {"type": "ParallelCoordinatesPlot", "title": "configuration -> quality", "columns": columns}
        )
        panels.append({"type": "BarPlot", "title": f"{q} by run", "metrics": [{"summary": q}]})
    return panels + [{"type": "RunComparer", "diff_only": "split"}]


def wandb_report_spec(
    report: SweepReport,
    *,
    project: str | None = None,
    entity: str | None = None,
    max_panels_per_cost: int = 3,
) -> dict[str, Any]:
    """The W&B Report of the sweep as plain data: title, the run sets, and block by block
    the text and panels. Metric panels read run summaries (the per-job runs log every
    results.json key); config panels read the resolved config the job runs logged."""
    group = report.sweep_id
    report_panels = [
        {"type": "WeavePanelSummaryTable", "table_name": "report/ranked"},
        {"type": "WeavePanelSummaryTable", "table_name": "report/jobs"},
        {"type": "MediaBrowser", "title": "Pareto fronts", "media_keys": [f"report/pareto_{c}" for c in PARETO_COSTS]},
    ]  # fmt: skip
    blocks = [
        {"type": "H1", "text": f"Sweep {group}"},
        *({"type": "P", "text": line} for line in report.summary_lines()),
        {"type": "H2", "text": "Recommendation"},
        *({"type": "P", "text": rec.text} for rec in report.recommendations),
        {"type": "P", "text": report.encode.summary()},
        {"type": "H2", "text": "Ranked configurations"},
        {"type": "MarkdownBlock", "text": markdown_table(*ranked_table(report.rows))},
        {"type": "H2", "text": "Quality vs cost (job runs)"},
        {"type": "PanelGrid", "runset": "jobs", "panels": _job_panels(report, max_panels_per_cost)},
        {"type": "H2", "text": "Report run: tables and Pareto plots"},
        {"type": "PanelGrid", "runset": "report", "panels": report_panels},
    ]
    return {
        "project": project or report.wandb.get("project") or "embedlab",
        "entity": entity or report.wandb.get("entity"),
        "title": f"Sweep {group}: decision report",
        "description": report.recommendations[0].text[:500] if report.recommendations else "",
        "group": group,
        "runsets": {
            "jobs": {"name": f"{group} jobs", "filters": f"Group = '{group}' and JobType != 'report'"},
            "report": {"name": f"{group} report", "filters": f"Group = '{group}' and JobType = 'report'"},
        },
        "blocks": blocks,
    }


def _panel(wr: Any, p: dict[str, Any]) -> Any:
    def metric(ref: dict[str, str]) -> Any:
        return wr.Config(ref["config"]) if "config" in ref else wr.SummaryMetric(ref["summary"])

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


def build_wandb_report(spec: dict[str, Any]) -> WandbReport:
    """A ``wandb_workspaces.reports.v2.Report`` from wandb_report_spec (needs wandb-workspaces).

    Building touches no network; only ``publish_wandb_report`` (``Report.save()``) does.
    """
    import wandb_workspaces.reports.v2 as wr

    runsets = {key: wr.Runset(entity=spec["entity"] or "", project=spec["project"], name=rs["name"],
                              filters=rs["filters"]) for key, rs in spec["runsets"].items()}  # fmt: skip
    blocks: list[Any] = []
    for b in spec["blocks"]:
        kind = b["type"]
        if kind in {"H1", "H2", "P", "MarkdownBlock"}:
            blocks.append(getattr(wr, kind)(text=b["text"]))
        elif kind == "PanelGrid":
            blocks.append(
                wr.PanelGrid(runsets=[runsets[b["runset"]]], panels=[_panel(wr, p) for p in b["panels"]])
            )
        else:
            raise ValueError(f"unknown block type {kind!r}")
    # Report's default entity asks the W&B API for the user's entity: give one so that
    # building stays offline (the server resolves "" to the key's default entity on save).
    entity = spec["entity"] or os.environ.get("WANDB_ENTITY") or ""
    return wr.Report(project=spec["project"], title=spec["title"], description=spec["description"],
                     blocks=blocks, entity=entity)  # fmt: skip


def publish_wandb_report(report_obj: WandbReport, *, mode: str = "auto") -> str | None:
    """Save the W&B Report to the server and return its URL; None (nothing sent) unless online."""
    if choose_mode(mode) != "online":  # type: ignore[arg-type]
        log.warning(
            "W&B Report not published: no API key or server unreachable (the spec is in wandb_report.json)."
        )
        return None
    report_obj.save()
    return str(report_obj.url)


def publish_spec(spec: dict[str, Any], *, mode: str = "auto") -> str | None:
    """Build and publish the Report of ``spec``; None when wandb-workspaces is missing or offline."""
    from importlib.util import find_spec

    try:
        available = find_spec("wandb_workspaces") is not None
    except (ImportError, ValueError):
        available = False
    if not available:
        log.warning(
            "wandb-workspaces is not installed: W&B Report not published (spec in wandb_report.json)."
        )
        return None
    return publish_wandb_report(build_wandb_report(spec), mode=mode)
