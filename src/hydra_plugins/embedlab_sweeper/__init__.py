"""embedlab's Hydra sweeper plugin (Hydra loads sweepers only from ``hydra_plugins``)."""
