"""Sweep -> decision report: ``scan`` (jobs, failed ones too) -> ``cells`` (ranked, Pareto-marked) ->
``recommend`` (under a budget) -> ``render`` / ``wandb_report``; ``hydra_callback`` runs it per sweep."""
