"""Sweep results -> one decision report.

:mod:`~embedlab.report.scan` finds a sweep's jobs and reads each ``results.json`` (or why
it has none) into a job record; :mod:`~embedlab.report.cells` folds seeds into
configuration cells with their quality and cost columns and marks the Pareto fronts;
:mod:`~embedlab.report.recommend` picks a configuration under a stated budget;
:mod:`~embedlab.report.render` writes Markdown, CSV, JSON and a self-contained HTML page;
:mod:`~embedlab.report.wandb_report` logs it to W&B. :mod:`~embedlab.report.hydra_callback`
(the only module here that imports Hydra) runs it at the end of every sweep.
"""
