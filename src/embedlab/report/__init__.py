"""Sweep results -> one decision report.

:mod:`embedlab.report.aggregate` reads the ``results.json`` of every job of a Hydra
multirun (or of several run folders) into job records, ranks configuration cells by a
quality metric with their cost columns, marks the Pareto fronts and recommends a
configuration under a stated budget. :mod:`embedlab.report.render` writes it as
Markdown, CSV and a self-contained HTML page, and optionally to W&B.
:mod:`embedlab.report.hydra_callback` runs it at the end of every sweep.
"""
