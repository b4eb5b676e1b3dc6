"""Plain, frozen specs of a run's axes, each checked in its ``__post_init__`` and read from its plain
config section by :func:`read` (or its ``from_cfg``); :func:`check_run` joins axes. No Hydra here:
``DimensionSpec(size=128, method="pca")`` works in a REPL, and a new axis is one dataclass + one line."""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from embedlab.data.sts import STSSpec
from embedlab.data.text_corpus import CorpusSpec
from embedlab.devices import check_device_setting, follow_trainer
from embedlab.encode.encoder import EncodeSettings
from embedlab.errors import ConfigError
from embedlab.eval.fusion import FusionSpec
from embedlab.eval.index import IndexSpec, index_spec
from embedlab.eval.index_store import DEVICES as INDEX_DEVICES
from embedlab.eval.lexical import BM25Settings
from embedlab.eval.precision import PRECISIONS
from embedlab.models.encoder import EncoderSpec
from embedlab.models.weight_precision import WEIGHT_PRECISIONS

if TYPE_CHECKING:
    from collections.abc import Mapping

T = TypeVar("T")
MAX_BATCH = 65536  # a sanity bound on data.batch_size / eval_batch_size, far above any useful value
DimensionMethod = Literal["truncate", "projection", "pca"]


def read(cls: type[T], section: Mapping[str, Any] | None, **overrides: Any) -> T:
    """``cls`` (a dataclass) from the keys of ``section`` that are its fields (lists as tuples), then
    ``overrides``: the one reader of every spec, so a new config key is a new field."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in (section or {}).items() if k in names}
    return cls(**(kw | overrides))


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class DimensionSpec:
    """``dimension/``: truncate and pca act at evaluation time; projection is a trained layer (model)."""

    name: str = "full"
    size: int | None = None
    method: DimensionMethod = "truncate"

    def __post_init__(self) -> None:
        if self.method not in ("truncate", "projection", "pca"):
            raise ConfigError(
                f"Unknown dimension.method '{self.method}'. Choose truncate, projection or pca."
            )
        if self.size is not None and (isinstance(self.size, bool) or int(self.size) < 1):
            raise ConfigError(f"dimension.size must be a positive integer, got {self.size}.")

    @property
    def truncate_dims(self) -> tuple[int, ...]:
        return (int(self.size),) if self.method == "truncate" and self.size else ()

    @property
    def pca_dims(self) -> tuple[int, ...]:
        return (int(self.size),) if self.method == "pca" and self.size else ()

    @property
    def projection_dim(self) -> int | None:
        return int(self.size) if self.method == "projection" and self.size else None

    @property
    def eval_size(self) -> int | None:
        """The evaluation-time size (truncate or pca), checked against the model's output."""
        return int(self.size) if self.size and self.method != "projection" else None


@dataclass(frozen=True)
class WeightsSpec:
    """``weights/``: the precision the encoder's weights run in (evaluation only below fp32)."""

    name: str = "fp32"

    def __post_init__(self) -> None:
        if self.name not in WEIGHT_PRECISIONS:
            raise ConfigError(
                f"weights={self.name} is unknown. Choose {', '.join(WEIGHT_PRECISIONS[:-1])} or {WEIGHT_PRECISIONS[-1]}."
            )


@dataclass(frozen=True)
class PrecisionSpec:
    """``quantization/``: embedding precision and THE rescoring multiplier (a compressed search
    retrieves k * this candidates, rescored with the float32 query; 0: none)."""

    name: str = "none"
    embeddings: str = "float32"
    rescore_multiplier: int = 0

    def __post_init__(self) -> None:
        if self.embeddings not in PRECISIONS:
            raise ConfigError(
                f"quantization={self.name}: embedding precision {self.embeddings} is unknown. "
                f"Choose one of {PRECISIONS}."
            )
        if int(self.rescore_multiplier) < 0:
            raise ConfigError(f"quantization.rescore_multiplier must be >= 0, got {self.rescore_multiplier}.")


@dataclass(frozen=True)
class IndexSettings:
    """``index/``: the ANN index benchmarked (None: exact search only) and its query settings."""

    spec: IndexSpec | None = None
    k: int = 10
    n_latency_queries: int = 200
    save: bool = True  # keep the built index in the cache; a later job with the same key reads it
    device: str = "cpu"  # where it searches: cpu | cuda | auto (eval/index_store.py)

    def __post_init__(self) -> None:
        if not isinstance(self.save, bool) or self.device not in INDEX_DEVICES:
            raise ConfigError(
                f"index.save must be true or false (got {self.save!r}) and index.device one of "
                f"{', '.join(INDEX_DEVICES)} (got {self.device!r})."
            )

    @classmethod
    def from_cfg(cls, node: Mapping[str, Any] | None) -> IndexSettings:
        if not node or not node.get("kind"):
            return cls(None, 10, 0)
        return read(cls, node, spec=index_spec(node["kind"], **(node.get("params") or {})))


@dataclass(frozen=True)
class ObjectiveSpec:
    """``objective/``: loss and optimiser; ``extra``: the loss's own sections (hard_negatives, guard ...)."""

    name: str = "cosine"
    loss: str = "cosine"
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    scale: float = 20.0
    matryoshka_dims: tuple[int, ...] | None = None
    matryoshka_weights: tuple[float, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=frozen)

    @classmethod
    def from_cfg(cls, o: Mapping[str, Any]) -> ObjectiveSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return read(cls, o, extra=frozen({k: v for k, v in o.items() if k not in names}))


@dataclass(frozen=True)
class EncodeSpec:
    """``encode/``: the Encoder's settings, the poolings sharing one transformer pass, and the device
    setting evaluation, encoding and probes run on (resolved per process by ``devices.resolve_device``)."""

    settings: EncodeSettings = field(default_factory=EncodeSettings)
    share_poolings: tuple[str, ...] = ()
    device: str = "cpu"  # cpu | cuda | cuda:<i> | auto

    def __post_init__(self) -> None:
        check_device_setting(self.device)

    @classmethod
    def from_cfg(cls, c: Mapping[str, Any]) -> EncodeSpec:
        """``encode/`` plus the data's eval batch size and the weights' precision (a cache-key part);
        ``encode.device`` null: the trainer's accelerator."""
        check_batch_sizes(c["data"])  # with its fix hint, before EncodeSettings' own check
        batch, weights = int(c["data"].get("eval_batch_size", 64)), str(c["weights"]["name"])
        encode = c.get("encode") or {}
        settings = read(EncodeSettings, encode, batch_size=batch, weight_precision=weights)
        device = encode.get("device") or follow_trainer(c["trainer"].get("accelerator", "cpu"))
        return read(cls, encode, settings=settings, device=device)


@dataclass(frozen=True)
class ObjectSpec:
    """A class to build by dotted path with keyword arguments (trainer, a logger, a callback)."""

    target: str
    kwargs: Mapping[str, Any] = field(default_factory=frozen)

    @classmethod
    def from_cfg(cls, node: Mapping[str, Any]) -> ObjectSpec:
        return cls(node["_target_"], frozen({k: v for k, v in node.items() if k != "_target_"}))

    def build(self, **overrides: Any) -> Any:
        module, _, name = self.target.rpartition(".")
        return getattr(importlib.import_module(module), name)(**{**self.kwargs, **overrides})


def object_specs(section: Mapping[str, Any] | None) -> tuple[ObjectSpec, ...]:
    """The ``_target_`` entries of a ``callbacks/`` or ``logger/`` section."""
    nodes = (section or {}).values()
    return tuple(ObjectSpec.from_cfg(n) for n in nodes if isinstance(n, dict) and "_target_" in n)


@dataclass(frozen=True)
class RunSettings:
    """Run-level keys of train.yaml / evaluate.yaml and what the job knows about itself."""

    task_name: str = "train"
    output_dir: str = "outputs/run"
    cache_dir: str = "cache"
    seed: int = 42
    fit: bool = True
    ckpt_path: str | None = None
    eval_splits: tuple[str, ...] = ("validation", "test")
    save_model: bool = True
    eval_before_fit: bool = False  # also score the initial model (meta.before_fit)
    n_worst_pairs: int = 20
    embedding_cache: bool = True
    monitor: str = ""
    run_name: str = "defaults"
    trainer: ObjectSpec = ObjectSpec("lightning.Trainer")
    callbacks: tuple[ObjectSpec, ...] = ()
    loggers: tuple[ObjectSpec, ...] = ()
    config: Mapping[str, Any] = field(default_factory=frozen)  # resolved, for meta

    @classmethod
    def from_cfg(
        cls, c: Mapping[str, Any], run_name: str = "defaults", sweep: str | None = None
    ) -> RunSettings:
        """``run_name`` / ``sweep``: the Hydra job's override string and multirun id (W&B name, group)."""
        loggers = []
        for spec in object_specs(c.get("logger")):
            if "make_wandb_logger" in spec.target:  # one W&B run per job, grouped by its sweep
                kw = {**spec.kwargs, "name": spec.kwargs.get("name") or run_name}
                spec = ObjectSpec(spec.target, frozen(kw | {"group": kw.get("group") or sweep}))
            loggers.append(spec)
        paths = {k: str(c["paths"][k]) for k in ("output_dir", "cache_dir")}
        trainer, callbacks = ObjectSpec.from_cfg(c["trainer"]), object_specs(c.get("callbacks"))
        kw = {"trainer": trainer, "callbacks": callbacks, "loggers": tuple(loggers), "config": frozen(c)}
        return read(cls, c, **paths, run_name=run_name, **kw)


@dataclass(frozen=True)
class RunSpecs:
    """Every axis of one run; ``data``: the task's spec (STSSpec, CorpusSpec) or the plain mapping."""

    model: EncoderSpec
    model_kind: str
    model_extra: Mapping[str, Any]  # e.g. the fasttext section, from_saved_modules
    dimension: DimensionSpec
    weights: WeightsSpec
    precision: PrecisionSpec
    index: IndexSettings
    task: str
    data_name: str
    data: Any
    data_cfg: Mapping[str, Any]  # the plain data section (batch sizes, metric, ks, ...)
    objective: ObjectiveSpec
    encode: EncodeSpec
    run: RunSettings
    fusion: FusionSpec | None = None  # hybrid retrieval with BM25 (``fusion/``); None: dense alone
    bm25: BM25Settings = BM25Settings()  # ``bm25/``: model=bm25 and the lexical side of a fusion

    @property
    def pooling(self) -> str:
        return self.model.pooling

    @classmethod
    def from_cfg(cls, c: Mapping[str, Any], run_name: str = "defaults", sweep: str | None = None) -> RunSpecs:
        """Every axis of a resolved config (a plain mapping); each spec checks itself."""
        m, d, dimension = c["model"], c["data"], read(DimensionSpec, c["dimension"])
        pooling = (c.get("pooling") or {}).get("mode", "mean")
        return cls(
            model=read(EncoderSpec, m, pooling=pooling, projection_dim=dimension.projection_dim),
            model_kind=str(m.get("kind", "transformer")),
            model_extra=frozen({k: v for k, v in m.items() if k in ("fasttext", "from_saved_modules")}),
            dimension=dimension,
            weights=read(WeightsSpec, c["weights"]),
            precision=read(PrecisionSpec, c["quantization"]),
            index=IndexSettings.from_cfg(c.get("index")),
            task=str(d["task"]),
            data_name=str(d["name"]),
            data=data_spec(d, int(c["seed"])),
            data_cfg=frozen(d),
            objective=ObjectiveSpec.from_cfg(c["objective"]),
            encode=EncodeSpec.from_cfg(c),
            run=RunSettings.from_cfg(c, run_name, sweep),
            fusion=None
            if (c.get("fusion") or {}).get("name", "none") == "none"
            else read(FusionSpec, c["fusion"]),
            bm25=read(BM25Settings, c.get("bm25") or {}),
        )


def data_spec(d: Mapping[str, Any], seed: int) -> Any:
    """STS pairs and MLM corpora have typed specs; other tasks read their (frozen, plain) ``data``
    mapping, so a new task needs no reader here."""
    if d["task"] == "sts":
        floats = {k: tuple(float(x) for x in d[k]) for k in ("score_range", "split_fractions")}
        return read(STSSpec, d, **floats, files=dict(d.get("files") or {}))
    if d["task"] == "mlm":  # the run's seed splits a corpus unless it names its own; max_pairs: an alias
        return read(CorpusSpec, {"split_seed": seed, "max_texts": d.get("max_pairs"), **d})
    return frozen(d)


def check_batch_sizes(data: Mapping[str, Any]) -> None:
    for key in ("batch_size", "eval_batch_size"):
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BATCH
        ):
            raise ConfigError(
                f"data.{key}={value!r}: use an integer from 1 to {MAX_BATCH} (typical: 16-256). One batch is "
                f"encoded at once, so a huge one needs memory for every text of the split together."
            )


def check_run(s: RunSpecs) -> None:
    """Rules that join axes (each axis checked itself when its spec was built)."""
    fit, task = s.run.fit, s.task
    if (s.objective.loss == "mlm") != (task == "mlm"):
        raise ConfigError(
            f"objective={s.objective.name} with data={s.data_name} (task {task}): continued MLM needs "
            f"objective=mlm with a text corpus (data=medical, mlm_lee), and MLM corpora train only with objective=mlm."
        )
    w = s.weights.name
    if w != "fp32" and (fit or task == "mlm"):  # reduced weights are for scoring only
        raise ConfigError(
            f"weights={w} is evaluation-only: it cannot be combined with fit=true or data={s.data_name} "
            f"(task {task}). Fine-tune in fp32, then evaluate the saved model: "
            f"evaluate.py model=saved model.name_or_path=<run>/model weights={w}."
        )
    if w != "fp32" and s.model_kind != "transformer":
        raise ConfigError(
            f"weights={w} applies to transformer encoders; model={s.model.name} is {s.model_kind}. Use weights=fp32."
        )
    if w == "int8" and s.encode.device.startswith("cuda"):
        raise ConfigError(
            f"weights=int8 runs on the CPU only, but the run encodes on {s.encode.device} (encode.device, or "
            "trainer.accelerator=gpu when it is null). Fix: encode.device=cpu, or weights=bf16 on a GPU."
        )
    check_lexical(s)
    if s.model_kind == "fasttext":
        from embedlab.models.fasttext import check_fasttext_settings

        check_fasttext_settings(
            pooling=s.pooling, fit=fit, projection_dim=s.dimension.projection_dim, task=task
        )
    check_batch_sizes(s.data_cfg)


def check_lexical(s: RunSpecs) -> None:
    """model=bm25 and fusion= belong to retrieval evaluation; a fusion fuses the exact full ranking."""
    if s.model_kind == "bm25" and (s.task != "retrieval" or s.run.fit):
        raise ConfigError(
            f"model=bm25 is a lexical retrieval baseline: evaluate it on retrieval data (data=scifact) with "
            f"evaluate.py; data={s.data_name} (task {s.task}){' with fit=true' if s.run.fit else ''} cannot use it."
        )
    if s.fusion is None:
        return
    if s.task != "retrieval" or s.model_kind == "bm25":
        raise ConfigError(
            f"fusion={s.fusion.name} fuses a dense model's ranking with BM25 on retrieval data; model={s.model.name} "
            f"with data={s.data_name} has none to fuse. Fix: fusion=none, or a dense model on retrieval data."
        )
    approximate = s.index.spec is not None and s.index.spec.kind != "flat"
    if s.dimension.eval_size is not None or s.precision.embeddings != "float32" or approximate:
        raise ConfigError(
            f"fusion={s.fusion.name} fuses the full-dimension float32 exact ranking: combine it with "
            "dimension=full quantization=none index=exact (sweep those axes in jobs without fusion)."
        )
