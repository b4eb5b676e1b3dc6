"""Sweep results -> one decision report: ``scan`` reads the jobs (failed ones too), ``cells``
folds seeds into ranked, Pareto-marked cells, ``recommend`` picks one under a budget,
``render`` writes the files and ``wandb_report`` logs to W&B; ``hydra_callback`` (the only
module here importing Hydra) runs it at the end of every sweep.
"""
