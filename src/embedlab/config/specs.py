"""The one place a composed Hydra config becomes plain specs (``build_specs``) and that composes
configs outside a Hydra job (``compose_specs``, for experiments/): below here nobody sees a DictConfig."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from embedlab.config.axes import RunSpecs, check_run
from embedlab.errors import ConfigError
from embedlab.tasks.registry import task_class

_SHIPPED = Path(__file__).resolve().parents[1] / "configs"  # an installed wheel ships them (setup.py)
# else a checkout: beside train.py, as its config_path says
CONFIGS = _SHIPPED if _SHIPPED.is_dir() else Path(__file__).resolve().parents[3] / "configs"


def build_specs(cfg: DictConfig, *, check: bool = True, fit: bool | None = None) -> RunSpecs:
    """Every axis of ``cfg`` as plain specs; with ``check``, the cross-axis and task rules too.
    ``fit`` overrides ``cfg.fit`` (evaluate.py: False)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(c, dict)
    if fit is not None:
        c["fit"] = fit
    specs = RunSpecs.from_cfg(c, *hydra_job_names())
    if check:
        check_config(specs)
    return specs


def check_config(specs: RunSpecs | DictConfig) -> None:
    """Reject combinations that cannot work, before anything heavy is loaded."""
    if isinstance(specs, DictConfig):
        specs = build_specs(specs, check=False)
    task_class(specs.task).check(specs)  # an unknown data.task is a ConfigError here
    check_run(specs)


def hydra_job_names() -> tuple[str, str | None]:
    """(the job's override string, its multirun's sweep id or None) from Hydra's runtime."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except Exception:  # no Hydra context: a test or a REPL
        return "defaults", None
    sweep = None
    if hc.mode == RunMode.MULTIRUN:
        from embedlab.report.scan import sweep_group_for_dir

        sweep = sweep_group_for_dir(hc.sweep.dir)  # the report's summary run uses the same group
    return hc.job.override_dirname or "defaults", sweep


def compose_specs(
    overrides: Sequence[str] = (),
    config_name: str = "evaluate",
    *,
    check: bool = True,
    output_dir: str = "outputs/compose",
) -> RunSpecs:
    """The specs ``python <config_name>.py <overrides>`` would run, without a Hydra job (experiments/).
    ``check=False`` keeps only per-axis checks; ``output_dir`` stands in for Hydra's job folder."""
    from hydra import compose, initialize_config_dir

    if not (CONFIGS / f"{config_name}.yaml").is_file():
        raise ConfigError(
            f"No {config_name}.yaml in {CONFIGS}: compose_specs reads the configs/ beside train.py "
            f"(or the copy an installed wheel ships). "
            f"Fix: run from a source checkout (pip install -e .) with configs/ at its root."
        )
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir  # replaces ${hydra:runtime.output_dir}
    return build_specs(cfg, check=check)


def load_run_specs(run_dir: str | Path, data_dir: str | None = None) -> RunSpecs:
    """The specs of a finished run (what ``python -m embedlab.visualise`` reads): its composed config
    (``.hydra/config.yaml``, else results.json's resolved copy) with ``paths.output_dir`` = ``run_dir``."""
    run_dir = Path(run_dir)
    hydra_cfg, results = run_dir / ".hydra" / "config.yaml", run_dir / "results.json"
    if hydra_cfg.is_file():
        cfg = OmegaConf.load(hydra_cfg)
    elif results.is_file():
        from embedlab.tracking.results import read_results

        cfg = OmegaConf.create(read_results(results)["meta"]["config"])
    else:
        raise ConfigError(
            f"{run_dir} is not a run folder: it holds neither .hydra/config.yaml nor results.json. "
            f"Fix: pass the folder a train.py / evaluate.py run wrote (outputs/<task>/runs/<date>/<time>)."
        )
    assert isinstance(cfg, DictConfig)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # replaces ${hydra:runtime.output_dir}
        if data_dir is not None:
            cfg.paths.data_dir = str(data_dir)
    return build_specs(cfg, check=False)
