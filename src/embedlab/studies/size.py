"""Model size and speed, measured: what each way of shrinking an encoder costs and buys.

For one SentenceTransformer this builds reduced variants (weights in bf16 or dynamic int8,
every other transformer layer dropped, an ONNX export in float32 or ORT dynamic int8, and
any prebuilt ONNX file of the same architecture as a reference point), saves each as a model
folder and measures, on the same texts:

- bytes on disk: the saved folder (every file) and its weight files alone;
- encode latency: 1 thread, every variant once per round, the order rotated each round,
  median over rounds (so a busy machine slows all variants alike);
- agreement with the float32 model: cosine of each text's two embeddings, mean and min;
- quality: STS-B test Spearman (or any scored pairs given).

Every variant runs the float32 model's own tokenizer, batching and pooling modules; only the
transformer changes. ONNX variants run the exported transformer in onnxruntime and hand its
token embeddings to the same pooling and normalisation modules (``studies/onnx_export.py``).
The plot is ``embedlab.viz.plots.plot_size_quality``.
"""

from __future__ import annotations

import copy
import logging
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedlab.eval.arrays import unit_rows
from embedlab.eval.sts import paired_cosine
from embedlab.models.weight_precision import apply_weight_precision, detect_weight_precision
from embedlab.studies.onnx_export import OnnxEncoder, export_onnx, quantize_onnx_int8

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) float32
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".onnx.data", ".onnx_data")
INT8_WEIGHTS = "model.int8.pt"  # torch dynamic int8 transformer state dict (not safetensors-able)


@dataclass
class Variant:
    """One reduced model: how to embed with it and where it was saved."""

    name: str
    description: str
    embed: Embed
    folder: Path


@dataclass(frozen=True)
class VariantResult:
    name: str
    description: str
    total_bytes: int  # every file of the saved folder
    weight_bytes: int  # the weight files alone
    latency_s: float  # median seconds to embed the latency texts (1 thread)
    latency_rounds: list[float]
    n_latency_texts: int
    cosine_mean: float  # to the float32 model's embeddings of the same probe texts
    cosine_min: float
    spearman: float | None  # quality on the scored pairs (STS-B test), None if not given
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- bytes on disk ---------------------------------------------------------------------


def folder_bytes(path: str | Path, weights_only: bool = False) -> int:
    """Sum of the sizes of the regular files under ``path`` (only weight files if asked)."""
    files = [p for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink()]
    if weights_only:
        files = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)]
    return sum(p.stat().st_size for p in files)


def _save_without_weights(reference: SentenceTransformer, folder: Path) -> None:
    """Everything ``reference.save`` writes (configs, tokenizer, pooling) except its weights."""
    reference.save(str(folder))
    for p in folder.iterdir():
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES):
            p.unlink()


def save_model(model: SentenceTransformer, folder: str | Path, reference: SentenceTransformer) -> Path:
    """Save ``model`` as a model folder; ``reference`` is its float32 original.

    fp32, bf16 and layer-dropped models are saved by sentence-transformers (safetensors).
    A dynamic int8 model cannot be (its Linear layers keep packed int8 weights that
    safetensors does not hold), so its folder holds the reference's configs and tokenizer and
    the transformer's state dict in ``model.int8.pt`` (torch.save: int8 values, per-channel
    scales, float32 biases, embeddings and layer norms); :func:`load_int8_weights` reads it.
    """
    import torch

    folder = Path(folder)
    if detect_weight_precision(model) != "int8":
        model.save(str(folder))
        return folder
    _save_without_weights(reference, folder)
    torch.save(model[0].auto_model.state_dict(), folder / INT8_WEIGHTS)
    return folder


def load_int8_weights(reference: SentenceTransformer, folder: str | Path) -> SentenceTransformer:
    """A copy of ``reference`` with int8 weights read from a folder :func:`save_model` wrote."""
    import torch

    model = apply_weight_precision(copy.deepcopy(reference), "int8")
    state = torch.load(Path(folder) / INT8_WEIGHTS, weights_only=True)
    model[0].auto_model.load_state_dict(state)
    return model


# --- reductions ------------------------------------------------------------------------


def _layer_list(auto_model) -> tuple[Any, str]:
    """(the module holding the transformer's layer list, the attribute name)."""
    for owner_name, attr in (("encoder", "layer"), ("transformer", "layer")):  # BERT/MPNet/XLM-R; DistilBERT
        owner = getattr(auto_model, owner_name, None)
        if owner is not None and hasattr(owner, attr):
            return owner, attr
    raise ValueError(
        f"Cannot find the layer list of {type(auto_model).__name__}: layer dropping supports BERT-style "
        f"(encoder.layer) and DistilBERT-style (transformer.layer) models."
    )


def drop_layers(model: SentenceTransformer, keep: Sequence[int]) -> SentenceTransformer:
    """Keep only the transformer layers ``keep`` (0-based, in order), in place; no retraining.

    The config's layer count follows, so the model saves and loads as a smaller model.
    """
    import torch

    auto = model[0].auto_model
    owner, attr = _layer_list(auto)
    layers = getattr(owner, attr)
    keep = list(keep)
    if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise ValueError(
            f"keep={keep} must be increasing, distinct layer indices in [0, {len(layers) - 1}] ({len(layers)} layers)."
        )
    setattr(owner, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    for name in ("num_hidden_layers", "n_layers"):  # BERT-style; DistilBERT
        if hasattr(auto.config, name):
            setattr(auto.config, name, len(keep))
    return model


def every_other_layer(n_layers: int, offset: int = 1) -> list[int]:
    """Every other layer index: offset 1 keeps the last layer (1, 3, 5 of 6), offset 0 the first."""
    return list(range(offset, n_layers, 2))


# --- variants --------------------------------------------------------------------------


def torch_embed(model: SentenceTransformer, batch_size: int = 64) -> Embed:
    """sentence-transformers' own ``encode`` (float32 output)."""

    def run(texts: Sequence[str]) -> np.ndarray:
        emb = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    return run


def build_variants(
    model: SentenceTransformer,
    workdir: str | Path,
    *,
    names: Sequence[str] = ("fp32", "bf16", "int8", "drop-odd", "drop-even", "onnx-fp32", "onnx-int8"),
    reference_onnx: dict[str, Path] | None = None,
    batch_size: int = 64,
) -> list[Variant]:
    """Build and save each named variant of the float32 ``model`` under ``workdir``.

    ``drop-odd`` drops layers 1, 3, 5 (1-based) and keeps 2, 4, 6 (the last layer stays),
    ``drop-even`` drops 2, 4, 6 and keeps 1, 3, 5; ``reference_onnx`` maps a name to a prebuilt ONNX transformer of the
    same architecture and tokenizer (its folder: the model's configs plus that file).
    """
    workdir = Path(workdir)
    n_layers = len(getattr(*_layer_list(model[0].auto_model)))
    variants: list[Variant] = []
    onnx_fp32: Path | None = None
    for name in names:
        folder = workdir / name
        if folder.exists():
            shutil.rmtree(folder)
        if name in {"fp32", "bf16", "int8"}:
            reduced = apply_weight_precision(copy.deepcopy(model), name)
            desc = {"fp32": "float32 weights (reference)", "bf16": "bfloat16 transformer weights",
                    "int8": "torch dynamic int8 Linear layers (embedding table fp32)"}[name]  # fmt: skip
        elif name in {"drop-odd", "drop-even"}:
            keep = every_other_layer(n_layers, offset=1 if name == "drop-odd" else 0)
            reduced = drop_layers(copy.deepcopy(model), keep)
            desc = f"layers {', '.join(str(i + 1) for i in keep)} of {n_layers} kept, no retraining"
        elif name in {"onnx-fp32", "onnx-int8"}:
            _save_without_weights(model, folder)
            if onnx_fp32 is None:
                onnx_fp32 = export_onnx(model, workdir / "_export" / "model.onnx")
            path = folder / "model.onnx"
            if name == "onnx-fp32":
                shutil.copyfile(onnx_fp32, path)
                desc = "ONNX export, float32, onnxruntime"
            else:
                quantize_onnx_int8(onnx_fp32, path)
                desc = "ONNX export, onnxruntime dynamic int8: MatMul (per channel) + embedding table"
            variants.append(Variant(name, desc, OnnxEncoder(model, path, batch_size=batch_size), folder))
            continue
        else:
            raise ValueError(
                f"Unknown variant {name!r}: choose fp32, bf16, int8, drop-odd, drop-even, onnx-fp32, onnx-int8."
            )
        save_model(reduced, folder, model)
        variants.append(Variant(name, desc, torch_embed(reduced, batch_size), folder))
    for name, src in (reference_onnx or {}).items():
        folder = workdir / name
        if folder.exists():
            shutil.rmtree(folder)
        _save_without_weights(model, folder)
        shutil.copyfile(src, folder / "model.onnx")
        variants.append(Variant(name, f"prebuilt ONNX file ({Path(src).parent.name}), onnxruntime",
                                OnnxEncoder(model, folder / "model.onnx", batch_size=batch_size), folder))  # fmt: skip
    shutil.rmtree(workdir / "_export", ignore_errors=True)
    return variants


# --- measurements ----------------------------------------------------------------------


def cosine_agreement(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(mean, min) over rows of the cosine between two (N, D) embeddings of the same texts."""
    if reference.shape != other.shape:
        raise ValueError(f"Embeddings of the same texts differ in shape: {reference.shape} vs {other.shape}.")
    a, b = unit_rows(reference), unit_rows(other)  # in their own dtype, as published
    cos = np.einsum("nd,nd->n", a.astype(np.float64), b.astype(np.float64))
    return float(cos.mean()), float(cos.min())


def interleaved_latency(
    embeds: dict[str, Embed], texts: Sequence[str], repeats: int
) -> dict[str, list[float]]:
    """Seconds each embedder takes on ``texts``: ``repeats`` rounds, every embedder once a
    round, the order rotated by one each round (no embedder always runs first or last)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    names = list(embeds)
    for name in names:  # warm-up: first-call allocations and lazy initialisation
        embeds[name](texts[: min(len(texts), 8)])
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            embeds[name](texts)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def measure_variants(
    variants: Sequence[Variant],
    probe_texts: Sequence[str],
    latency_texts: Sequence[str],
    *,
    repeats: int = 5,
    pairs: tuple[Sequence[str], Sequence[str], Sequence[float]] | None = None,
    reference: str = "fp32",
    threads: int = 1,
) -> list[VariantResult]:
    """Bytes, latency, agreement with ``reference`` and Spearman of every variant.

    ``probe_texts`` are embedded once per variant for the agreement; with ``pairs``
    (sentence1, sentence2, gold) the Spearman is scored from the same embeddings, so the
    probe texts must then hold both sides (see :func:`pair_texts`).
    """
    import torch

    by_name = {v.name: v for v in variants}
    if reference not in by_name:
        raise ValueError(f"The reference variant {reference!r} is not among {sorted(by_name)}.")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        probe = list(dict.fromkeys(probe_texts))
        index = {t: i for i, t in enumerate(probe)}
        emb = {}
        for v in variants:
            log.info("Embedding %d probe texts with %s", len(probe), v.name)
            emb[v.name] = v.embed(probe)
        seconds = interleaved_latency({v.name: v.embed for v in variants}, list(latency_texts), repeats)
    finally:
        torch.set_num_threads(before)
    results = []
    for v in variants:
        mean, low = cosine_agreement(emb[reference], emb[v.name])
        spearman = None
        if pairs is not None:
            from scipy.stats import spearmanr

            s1, s2, gold = pairs
            e = emb[v.name]
            cos = paired_cosine(e[[index[t] for t in s1]], e[[index[t] for t in s2]])
            spearman = float(spearmanr(np.asarray(gold, np.float64), cos).statistic)
        results.append(
            VariantResult(
                name=v.name,
                description=v.description,
                total_bytes=folder_bytes(v.folder),
                weight_bytes=folder_bytes(v.folder, weights_only=True),
                latency_s=statistics.median(seconds[v.name]),
                latency_rounds=seconds[v.name],
                n_latency_texts=len(latency_texts),
                cosine_mean=mean,
                cosine_min=low,
                spearman=spearman,
            )  # fmt: skip
        )
    return results


def pair_texts(s1: Sequence[str], s2: Sequence[str]) -> list[str]:
    """Distinct texts of both sides of scored pairs, in first-seen order."""
    return list(dict.fromkeys([*s1, *s2]))


# --- reporting -------------------------------------------------------------------------


def markdown_table(results: Sequence[VariantResult], reference: str = "fp32") -> str:
    """The results as a Markdown table, sizes and speed relative to ``reference``."""
    ref = next(r for r in results if r.name == reference)
    head = ("| variant | what | folder MB | weights MB | size vs fp32 | latency s (median) | speed vs fp32 "
            "| STS-B Spearman | change (points) | cosine to fp32 mean / min |")  # fmt: skip
    rows = [head, "|" + " --- |" * 10]
    for r in results:
        sp = f"{100 * r.spearman:.2f}" if r.spearman is not None else "-"
        delta = (
            f"{100 * (r.spearman - ref.spearman):+.2f}" if r.spearman is not None and ref.spearman else "-"
        )
        rows.append(
            f"| {r.name} | {r.description} | {r.total_bytes / 1e6:.1f} | {r.weight_bytes / 1e6:.1f} "
            f"| {r.total_bytes / ref.total_bytes:.2f}x | {r.latency_s:.2f} | {ref.latency_s / r.latency_s:.2f}x "
            f"| {sp} | {delta} | {r.cosine_mean:.4f} / {r.cosine_min:.4f} |"
        )
    return "\n".join(rows)
