"""What tasks and encode_corpus share: the run's model (a transformer, a saved model, or fastText
trained on texts gathered here, since models/ knows no datasets), its Encoder, a retrieval set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.data.retrieval import RetrievalSet, load_retrieval_set
from embedlab.data.sts import load_sts
from embedlab.data.text_corpus import CorpusSpec, load_corpus
from embedlab.devices import resolve_device
from embedlab.encode.cache import EmbeddingCache
from embedlab.encode.encoder import Encoder
from embedlab.encode.encoder import prefetch_poolings as prefetch
from embedlab.errors import ConfigError
from embedlab.models.encoder import build_encoder, embedding_dimension, load_saved_encoder

if TYPE_CHECKING:
    from embedlab.config.axes import RunSpecs


def build_model(specs: RunSpecs) -> tuple[Any, Any]:
    """(SentenceTransformer, ResolvedModel); checks the requested dimension against the model."""
    if specs.model_kind == "fasttext":
        model, resolved = build_fasttext(specs)
    elif specs.model_extra.get("from_saved_modules"):
        model, resolved = load_saved_encoder(specs.model)
    else:
        model, resolved = build_encoder(specs.model)
    model.to(run_device(specs))
    if specs.weights.name != "fp32":
        from embedlab.models.weight_precision import apply_weight_precision

        apply_weight_precision(model, specs.weights.name)  # evaluation only (config.axes.check_run)
    full, size = embedding_dimension(model), specs.dimension.eval_size
    if size is not None and size > full:
        raise ConfigError(
            f"dimension={specs.dimension.name} asks for {size} dimensions but model={specs.model.name} "
            f"with this pooling gives {full}. Fix: dimension=full or a size <= {full}."
        )
    return model, resolved


def build_fasttext(specs: RunSpecs) -> tuple[Any, Any]:
    """A fastText encoder trained (or read from the cache) on ``model.fasttext.corpus``."""
    from embedlab.models.fasttext import FastTextParams, build_fasttext_encoder

    ft = specs.model_extra["fasttext"]
    texts, corpus = training_texts(ft["corpus"], specs, file=ft.get("corpus_file"))
    cache_dir = Path(specs.run.cache_dir) if ft.get("cache") else None
    kw = {"corpus_name": corpus, "pooling": specs.pooling, "max_seq_length": specs.model.max_seq_length}
    return build_fasttext_encoder(texts, FastTextParams.from_mapping(ft["params"]), cache_dir=cache_dir, **kw)


def training_texts(source: str, specs: RunSpecs, *, file: str | None = None) -> tuple[list[str], str]:
    """The texts fastText trains on, and their name. ``eval``: what the evaluation set offers without
    its test labels (STS training sentences, a retrieval corpus); ``lee``: gensim's 300 Lee news
    documents; ``wiki``: gensim's Wikipedia excerpt; ``lines``: ``file``, one text a line."""
    if source == "eval" and specs.task == "sts":
        split = load_sts(specs.data, splits=("train",)).splits["train"]
        return list(dict.fromkeys(split.sentence1 + split.sentence2)), f"{specs.data_name}:train"
    if source == "eval" and specs.task == "retrieval":
        rset = load_retrieval(specs)
        return list(rset.corpus.values()), f"{rset.name}:corpus"
    if source == "eval":
        raise ConfigError(
            f"model.fasttext.corpus=eval has no training texts for a {specs.task} set (it uses STS training "
            f"sentences or a retrieval corpus). Fix: model.fasttext.corpus=wiki, lee, or lines with "
            f"model.fasttext.corpus_file=<one text a line>."
        )
    if source in {"lee", "wiki"}:
        spec = CorpusSpec(name=source, format=source, encoding="latin-1" if source == "lee" else "utf-8")  # type: ignore[arg-type]
        return list(load_corpus(spec).texts), source
    if source == "lines":
        if not file:
            raise ConfigError(
                "model.fasttext.corpus=lines needs model.fasttext.corpus_file=<path, one text a line>."
            )
        spec = CorpusSpec(name=Path(file).stem, format="lines", file=file)
        return list(load_corpus(spec).texts), f"lines:{Path(file).name}"
    from embedlab.models.fasttext import CORPUS_SOURCES

    raise ConfigError(f"Unknown model.fasttext.corpus '{source}'. Choose one of {CORPUS_SOURCES}.")


def run_device(specs: RunSpecs) -> str:
    """The device this process evaluates and encodes on: ``encode.device`` (null: the trainer's
    accelerator) resolved here; ``auto`` keeps int8 weights on the CPU, the only place they run."""
    setting = "cpu" if specs.weights.name == "int8" and specs.encode.device == "auto" else specs.encode.device
    return resolve_device(setting)


def make_encoder(specs: RunSpecs, model: Any) -> Encoder:
    """The run's one Encoder, its model on :func:`run_device` (after ``fit`` Lightning leaves it on the
    CPU), with the encode settings and embedding cache (encode_corpus fills the same entries)."""
    model.to(run_device(specs))
    root = Path(specs.run.cache_dir) / "embeddings" if specs.run.embedding_cache else None
    return Encoder(model, specs.encode.settings, EmbeddingCache(root))


def prefetch_poolings(specs: RunSpecs, encoder: Encoder, text_sets: list[tuple[str, list[str]]]) -> None:
    """With ``encode.share_poolings`` (a sweep's poolings), one transformer pass fills the
    cache for all of them, so the other poolings' jobs encode nothing."""
    if specs.encode.share_poolings and not specs.run.fit and specs.model_kind == "transformer":
        prefetch(encoder, text_sets, list(specs.encode.share_poolings))


def load_retrieval(specs: RunSpecs, split: str | None = None) -> RetrievalSet:
    """The run's retrieval set: ``split``, else the evaluation split ``data.split``."""
    d = specs.data_cfg
    opts = {"split": split or d["split"], "name": d["name"], "options": d}
    return load_retrieval_set(d["format"], d.get("root"), **opts)


def retrieval_texts(data: RetrievalSet) -> dict[str, list[str]]:
    """The text lists a retrieval evaluation encodes, in its order (encode_corpus fills the same keys)."""
    return {
        "documents": [data.corpus[d] for d in data.doc_ids],
        "queries": [data.queries[q] for q in data.query_ids],
    }
