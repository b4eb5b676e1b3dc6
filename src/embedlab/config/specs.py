"""The one place a composed Hydra config becomes plain specs (``build_specs``) and that composes
configs outside a Hydra job (``compose_specs``, for experiments/): below here nobody sees a DictConfig."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf, open_dict

from embedlab.config.axes import (
    DimensionSpec,
    EncodeSpec,
    IndexSettings,
    ObjectiveSpec,
    ObjectSpec,
    PrecisionSpec,
    RunSettings,
    RunSpecs,
    WeightsSpec,
    check_batch_sizes,
    check_run,
)
from embedlab.data.sts import STSSpec
from embedlab.data.text_corpus import CorpusSpec
from embedlab.encode.encoder import EncodeSettings
from embedlab.errors import ConfigError
from embedlab.eval.index import IndexSpec, index_spec
from embedlab.models.encoder import EncoderSpec
from embedlab.tasks.registry import task_class

T = TypeVar("T")
CONFIGS = Path(__file__).resolve().parents[3] / "configs"  # beside train.py, as its config_path says


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _frozen(node: Any) -> MappingProxyType:
    return MappingProxyType(dict(_plain(node) or {}))


def _pick(cls: type[T], mapping: Mapping[str, Any], **overrides: Any) -> T:
    """``cls`` (a dataclass) from the keys of ``mapping`` that are its fields, then ``overrides``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in {**mapping, **overrides}.items() if k in names})


def dimension_spec(cfg: DictConfig) -> DimensionSpec:
    d = cfg.dimension
    size = None if d.size is None else int(d.size)
    return DimensionSpec(name=str(d.get("name", "full")), size=size, method=d.method)


def encoder_spec(cfg: DictConfig) -> EncoderSpec:
    """model/ + pooling/ + the trained projection of dimension/ (the only dimension the model owns)."""
    pooling = cfg.pooling.mode if cfg.get("pooling") else "mean"
    return _pick(
        EncoderSpec, _plain(cfg.model), pooling=pooling, projection_dim=dimension_spec(cfg).projection_dim
    )


def sts_spec(cfg: DictConfig) -> STSSpec:
    d = _plain(cfg.data)
    return _pick(
        STSSpec,
        d,
        score_range=tuple(float(x) for x in d["score_range"]),
        split_fractions=tuple(float(x) for x in d["split_fractions"]),
        files=dict(d.get("files") or {}),
    )


def corpus_spec(data: Mapping[str, Any], seed: int) -> CorpusSpec:
    """The corpus a ``data/`` mapping describes (missing keys take CorpusSpec's defaults)."""
    max_texts = data.get("max_texts", data.get("max_pairs"))
    return _pick(
        CorpusSpec, {"split_seed": seed, **data}, max_texts=None if max_texts is None else int(max_texts)
    )


def index_spec_from_cfg(cfg: DictConfig) -> IndexSpec | None:
    node = cfg.get("index")
    if not node or not node.get("kind"):
        return None
    return index_spec(node.kind, **_plain(node.get("params") or {}))


def index_settings(cfg: DictConfig) -> IndexSettings:
    spec, node = index_spec_from_cfg(cfg), cfg.get("index") or {}
    if spec is None:
        return IndexSettings(None, 10, 0)
    return IndexSettings(spec, int(node.get("k", 10)), int(node.get("n_latency_queries", 200)))


def objective_spec(cfg: DictConfig) -> ObjectiveSpec:
    """The loss and optimiser keys; the rest of ``objective/`` (the loss's own sections) goes to ``extra``."""
    o = _plain(cfg.objective)
    dims, weights = o.get("matryoshka_dims"), o.get("matryoshka_weights")
    base = {f.name for f in dataclasses.fields(ObjectiveSpec)}
    floats = {"lr": float(o["lr"])} | {k: float(o.get(k, 0.0)) for k in ("weight_decay", "warmup_ratio")}
    return _pick(
        ObjectiveSpec,
        o,
        **floats,
        scale=float(o.get("scale", 20.0)),
        matryoshka_dims=None if dims is None else tuple(int(x) for x in dims),
        matryoshka_weights=None if weights is None else tuple(float(x) for x in weights),
        extra=MappingProxyType({k: v for k, v in o.items() if k not in base}),
    )


def encode_spec(cfg: DictConfig) -> EncodeSpec:
    check_batch_sizes(_plain(cfg.data))  # with its fix hint, before EncodeSettings' own check
    enc = cfg.get("encode") or {}
    settings = EncodeSettings(
        backend=enc.get("backend", "sentence-transformers"),
        precision=enc.get("precision") or "bf16",
        token_budget=enc.get("token_budget"),
        threads=enc.get("threads"),
        batch_size=int(cfg.data.get("eval_batch_size", 64)),
        weight_precision=str(cfg.weights.name),
    )
    return EncodeSpec(settings, share_poolings=tuple(enc.get("share_poolings") or ()))


def data_spec(cfg: DictConfig) -> Any:
    """STS pairs and MLM corpora have typed specs; other tasks read their (frozen, plain)
    ``data`` mapping, so a new task needs no builder here."""
    if cfg.data.task == "sts":
        return sts_spec(cfg)
    if cfg.data.task == "mlm":
        return corpus_spec(_plain(cfg.data), int(cfg.seed))
    return _frozen(cfg.data)


def object_specs(section: Any) -> tuple[ObjectSpec, ...]:
    plain = _plain(section) or {}
    return tuple(
        ObjectSpec(c.pop("_target_"), MappingProxyType(c))
        for c in plain.values()
        if isinstance(c, dict) and "_target_" in c
    )


def run_settings(cfg: DictConfig) -> RunSettings:
    run_name, sweep = hydra_job_names()
    loggers = []
    for spec in object_specs(cfg.get("logger")):
        if "make_wandb_logger" in spec.target:  # one W&B run per job, grouped by its sweep
            kw = dict(spec.kwargs)
            kw["name"], kw["group"] = kw.get("name") or run_name, kw.get("group") or sweep
            spec = ObjectSpec(spec.target, MappingProxyType(kw))
        loggers.append(spec)
    c = _plain(cfg)
    trainer = _plain(cfg.trainer)
    return _pick(
        RunSettings,
        c,
        output_dir=str(c["paths"]["output_dir"]),
        cache_dir=str(c["paths"]["cache_dir"]),
        eval_splits=tuple(c.get("eval_splits") or ()),
        run_name=run_name,
        trainer=ObjectSpec(trainer.pop("_target_"), MappingProxyType(trainer)),
        callbacks=object_specs(cfg.get("callbacks")),
        loggers=tuple(loggers),
        config=MappingProxyType(c),
    )


def build_specs(cfg: DictConfig, *, check: bool = True, fit: bool | None = None) -> RunSpecs:
    """Every axis of ``cfg`` as plain specs; with ``check``, the cross-axis and task rules too.
    ``fit`` overrides ``cfg.fit`` (evaluate.py: False)."""
    if fit is not None:
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.fit = fit
    m = cfg.model
    specs = RunSpecs(
        model=encoder_spec(cfg),
        model_kind=str(m.get("kind", "transformer")),
        model_extra=_frozen({k: v for k, v in m.items() if k in ("fasttext", "from_saved_modules")}),
        dimension=dimension_spec(cfg),
        weights=WeightsSpec(str(cfg.weights.name)),
        precision=PrecisionSpec(
            str(cfg.quantization.name),
            str(cfg.quantization.embeddings),
            int(cfg.quantization.get("rescore_multiplier") or 0),
        ),
        index=index_settings(cfg),
        task=str(cfg.data.task),
        data_name=str(cfg.data.name),
        data=data_spec(cfg),
        data_cfg=_frozen(cfg.data),
        objective=objective_spec(cfg),
        encode=encode_spec(cfg),
        run=run_settings(cfg),
    )
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
            f"No {config_name}.yaml in {CONFIGS}: compose_specs reads the configs/ folder beside train.py. "
            f"Fix: run from a source checkout (pip install -e .) with configs/ at its root."
        )
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir  # replaces ${hydra:runtime.output_dir}
    return build_specs(cfg, check=check)


def load_run_config(run_dir: Path, data_dir: str | None = None) -> DictConfig:
    """A run's composed config (``.hydra/config.yaml``, else results.json's resolved copy),
    with ``paths.output_dir`` set to ``run_dir``."""
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
    return cfg


def load_run_specs(run_dir: str | Path, data_dir: str | None = None) -> RunSpecs:
    """The specs of a finished run (what ``python -m embedlab.visualise`` reads)."""
    return build_specs(load_run_config(Path(run_dir), data_dir), check=False)
