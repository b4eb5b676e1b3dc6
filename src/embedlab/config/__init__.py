"""Hydra's edge: a composed config -> plain specs (``build_specs``), checked axis by axis."""

from embedlab.config.specs import build_specs, check_config, load_run_config, load_run_specs

__all__ = ["build_specs", "check_config", "load_run_config", "load_run_specs"]
