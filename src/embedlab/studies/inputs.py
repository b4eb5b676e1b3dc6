"""The models and texts a study runs on, from plain arguments: a ``configs/model/`` or ``configs/data/``
file is read as YAML, its ``${...}`` filled from the arguments and mapped onto the spec dataclass, so
a study builds what ``evaluate.py model=<m> data=<d>`` builds without composing a config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from embedlab.data.sts import load_sts
from embedlab.data.text_corpus import CorpusSpec, stsb_spec
from embedlab.encode.cache import EmbeddingCache
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError, ModelUnavailableError
from embedlab.models.encoder import EncoderSpec, build_encoder, drop_unused_pooler, locate
from embedlab.models.resolve import ResolvedModel, cache_root

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from embedlab.data.sts import PairSplit

T = TypeVar("T")
DEFAULT_SEED = 42  # configs/train.yaml and evaluate.yaml: seed


def read_config(path: str | Path, values: Mapping[str, object] | None = None) -> dict[str, Any]:
    """A config file as a dict, each ``${key}`` of ``values`` replaced; other ``${...}`` stay as text,
    so a caller that needs them sees what is missing."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"No config file {path}. Fix: use a name of a file in {path.parent}.")
    text = path.read_text(encoding="utf-8")
    for key, value in (values or {}).items():
        text = text.replace("${" + key + "}", str(value))
    return yaml.safe_load(text) or {}


def spec_from_mapping(cls: type[T], mapping: Mapping[str, Any], **overrides: Any) -> T:
    """``cls`` (a dataclass) from the keys of ``mapping`` that are its fields, then ``overrides``."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in {**mapping, **overrides}.items() if k in names})


def load_model(
    name: str, configs_dir: str | Path, *, name_or_path: str | None = None, **overrides: Any
) -> tuple[SentenceTransformer, ResolvedModel]:
    """The transformer encoder ``configs/model/<name>.yaml`` describes (``overrides``: EncoderSpec
    fields such as pooling or normalize). ``saved``-style configs load a folder a run wrote."""
    m = read_config(Path(configs_dir) / "model" / f"{name}.yaml")
    if name_or_path:
        m["name_or_path"] = name_or_path
    if m.get("name_or_path") == "???":  # Hydra's "must be given" marker (model=saved)
        raise ConfigError(f"model={name} needs a model folder: pass name_or_path (--name-or-path).")
    if m.get("kind", "transformer") != "transformer":
        raise ConfigError(f"model={name} is not a transformer: build it with its own builder (fastText).")
    spec = spec_from_mapping(EncoderSpec, m, **overrides)
    if not m.get("from_saved_modules"):
        return build_encoder(spec)
    from sentence_transformers import SentenceTransformer

    resolved = locate(spec)
    try:
        model = SentenceTransformer(
            str(resolved.path), device="cpu", trust_remote_code=spec.trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelUnavailableError(f"Saved model at {resolved.path} could not be loaded: {exc}") from exc
    drop_unused_pooler(model[0].auto_model)
    return model, resolved


def load_fasttext(
    configs_dir: str | Path, data: Mapping[str, Any], *, seed: int = DEFAULT_SEED, pooling: str = "mean"
) -> tuple[SentenceTransformer, ResolvedModel]:
    """fastText as ``evaluate.py model=fasttext data=<data>`` builds it: trained on the retrieval
    corpus of ``data`` (a data config read with :func:`read_config`), or read from the cache."""
    from embedlab.models.fasttext import FastTextParams, build_fasttext_encoder, training_texts  # torch

    m = read_config(Path(configs_dir) / "model" / "fasttext.yaml", {"seed": seed})
    ft = m["fasttext"]
    if ft["corpus"] == "eval" and data.get("task") != "retrieval":
        raise ConfigError(
            "load_fasttext trains on a retrieval corpus: give a retrieval data config (scifact)."
        )
    fields = ("format", "root", "split", "name")
    retrieval = tuple(data[k] for k in fields) if ft["corpus"] == "eval" else None
    task, file = str(data.get("task")), ft.get("corpus_file")
    texts, corpus = training_texts(ft["corpus"], task=task, file=file, retrieval=retrieval)
    kw = {"corpus_name": corpus, "pooling": pooling, "max_seq_length": int(m["max_seq_length"])}
    cache_dir = cache_root() if ft.get("cache") else None
    return build_fasttext_encoder(texts, FastTextParams.from_mapping(ft["params"]), cache_dir=cache_dir, **kw)


def encoder_from_config(
    configs_dir: str | Path,
    backend: str,
    model: Any,
    *,
    threads: int | None = None,
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
) -> Encoder:
    """``model`` run the way ``configs/encode/<backend>.yaml`` describes (``threads``: as
    ``encode.threads=...``), caching into ``cache`` under the key evaluate.py uses."""
    enc = read_config(Path(configs_dir) / "encode" / f"{backend}.yaml")
    keys = {k: enc[k] for k in ("backend", "precision", "token_budget") if k in enc}
    return Encoder(model, EncodeSettings(**keys, threads=threads, batch_size=batch_size), cache)


def corpus_spec(
    name: str, configs_dir: str | Path, data_dir: str | Path, *, seed: int = DEFAULT_SEED, **overrides: Any
) -> CorpusSpec:
    """The document corpus ``configs/data/<name>.yaml`` describes (``medical``, ``mlm_lee``)."""
    d = read_config(Path(configs_dir) / "data" / f"{name}.yaml", {"paths.data_dir": data_dir})
    if d.get("task") != "mlm":
        raise ConfigError(f"data={name} is not a document corpus: use data=medical or data=mlm_lee.")
    return spec_from_mapping(CorpusSpec, {"split_seed": seed, **d}, **overrides)


def stsb_test(data_dir: str | Path) -> PairSplit:
    """STS-B test pairs from ``<data_dir>/stsb`` (as ``configs/data/stsb.yaml`` reads them)."""
    return load_sts(stsb_spec(Path(data_dir) / "stsb"), splits=("test",)).splits["test"]
