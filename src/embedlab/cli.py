"""The console scripts of an installed embedlab (pyproject.toml [project.scripts]):
``embedlab-train`` and ``embedlab-evaluate`` are train.py and evaluate.py on the configs found by
config/specs.py (shipped in the wheel, or beside train.py in a checkout); ``embedlab-report`` is
report.py (which imports it from here). Heavy imports (hydra, torch) wait until a command runs,
so ``embedlab-report --help`` stays instant."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def _hydra_job(config_name: str) -> None:
    """Run the Hydra app of ``<config_name>.py`` (its job function has the same name in jobs.py)."""
    import hydra

    from embedlab.config.specs import CONFIGS

    def main(cfg: Any) -> float | None:
        from embedlab import jobs

        return jobs.run_job(cfg, getattr(jobs, config_name))

    # Hydra names the job (hydra.job.name: its log file, SLURM job names) after the task's module:
    # "train" / "evaluate", as for python train.py
    main.__module__ = config_name
    hydra.main(version_base="1.3", config_path=str(CONFIGS), config_name=config_name)(main)()


def train() -> None:
    """embedlab-train [group=option ...]: fine-tune and evaluate (python train.py)."""
    _hydra_job("train")


def evaluate() -> None:
    """embedlab-evaluate model=... data=...: evaluate without training (python evaluate.py)."""
    _hydra_job("evaluate")


def parse_report_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Rank the configurations of a Hydra sweep, mark the quality/cost Pareto fronts, "
        "and recommend one under a budget. Writes report.md, report.csv, jobs.csv, report.json, "
        "report.html and pareto_*.png.",
        epilog="Example: python report.py outputs/evaluate/multiruns/2026-11-24/10-00-00 "
        "--max-latency-ms 1.0 --min-throughput 200 --max-memory-mb 50",
    )
    p.add_argument("dirs", nargs="+", help="multirun folder(s), run folder(s), or a folder holding sweeps")
    p.add_argument(
        "--metric", help="quality key to rank by, e.g. test/scifact/ndcg@10 (default: each job's monitor)"
    )
    p.add_argument(
        "--mode", choices=["max", "min"], help="whether larger quality is better (default: monitor_mode)"
    )
    p.add_argument(
        "--exact-metric",
        action="store_true",
        help="rank by the key as given; by default the @dim/@precision/@index variant each job configured is used",
    )
    p.add_argument("--max-latency-ms", type=float, help="budget: p50 query latency of the ANN index")
    p.add_argument(
        "--min-throughput", type=float, help="budget: encode throughput, texts (or documents) per second"
    )
    p.add_argument("--max-memory-mb", type=float, help="budget: total index memory")
    p.add_argument("--out", help="output folder (default: <first dir>/report)")
    p.add_argument(
        "--running-window-s",
        type=float,
        default=600.0,
        help="a job without results.json whose log changed this recently counts as running, not failed",
    )
    p.add_argument("--wandb", action="store_true", help="also log a summary run in the sweep's W&B group")
    p.add_argument(
        "--wandb-project", help="W&B project (default: the jobs' logger.wandb.project or embedlab)"
    )
    p.add_argument("--wandb-entity", help="W&B entity (default: the jobs' logger.wandb.entity)")
    p.add_argument(
        "--wandb-mode",
        choices=["auto", "online", "offline", "disabled"],
        help="default: the jobs' mode or auto",
    )
    p.add_argument(
        "--publish-wandb-report",
        action="store_true",
        help="save a W&B Report of the sweep group (online only; needs wandb-workspaces)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    return p.parse_args(argv)


def report(argv: list[str] | None = None) -> int:
    """embedlab-report / python report.py: rank a sweep, mark its Pareto fronts, recommend."""
    args = parse_report_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from embedlab.report.hydra_callback import planned_overrides
    from embedlab.report.recommend import Budget
    from embedlab.report.render import generate_report

    try:
        outcome = generate_report(
            args.dirs,
            metric=args.metric,
            mode=args.mode,
            budget=Budget(args.max_latency_ms, args.min_throughput, args.max_memory_mb),
            out_dir=args.out,
            wandb=args.wandb,
            wandb_project=args.wandb_project,
            wandb_entity=args.wandb_entity,
            wandb_mode=args.wandb_mode,
            publish_wandb=args.publish_wandb_report,
            variant_aware=not args.exact_metric,
            running_window_s=args.running_window_s,
            planner=planned_overrides,
        )
    except FileNotFoundError as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 2
    report, files = outcome.report, outcome.files
    for rec in report.recommendations:
        print(rec.text, end="\n\n")
    print(report.encode.summary())
    if report.problem_jobs:
        print(f"{len(report.problem_jobs)} job(s) not completed:")
        for job in report.problem_jobs:
            print(f"  {job.status:11s} {job.name}: {job.reason}")
    print(f"Report: {files.markdown}  (also {files.html.name}, {files.csv.name}, {files.jobs_csv.name})")
    if outcome.wandb_run:
        print(
            f"W&B summary run {outcome.wandb_run.run_id} ({outcome.wandb_run.mode}) in group {outcome.wandb_run.group}"
        )
    if outcome.wandb_report_url:
        print(f"W&B Report: {outcome.wandb_report_url}")
    return 0
