"""Hydra's edge: a composed config -> plain specs (``build_specs``), checked axis by axis;
``compose_specs`` composes the repo's configs for scripts that run outside a Hydra job."""

from embedlab.config.specs import build_specs, check_config, compose_specs, load_run_specs

__all__ = ["build_specs", "check_config", "compose_specs", "load_run_specs"]
