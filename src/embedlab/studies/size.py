"""Model size and speed, measured: what each way of shrinking an encoder costs and buys.

Reduced variants of one SentenceTransformer (bf16 / dynamic int8 weights, every other layer dropped,
ONNX fp32 / int8 in onnxruntime, prebuilt ONNX files), each saved as a folder, measured on the same
texts: bytes on disk, 1-thread latency (interleaved rounds, median), cosine agreement with float32
and STS-B Spearman. Only the transformer changes: tokenizer, batching and pooling stay the model's.
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

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D) float32
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".onnx", ".onnx.data", ".onnx_data")
INT8_WEIGHTS = "model.int8.pt"  # torch dynamic int8 transformer state dict (not safetensors-able)
VARIANTS = ("fp32", "bf16", "int8", "drop-odd", "drop-even", "onnx-fp32", "onnx-int8")
DESCRIPTIONS = {
    "fp32": "float32 weights (reference)",
    "bf16": "bfloat16 transformer weights",
    "int8": "torch dynamic int8 Linear layers (embedding table fp32)",
    "onnx-fp32": "ONNX export, float32, onnxruntime",
    "onnx-int8": "ONNX export, onnxruntime dynamic int8: MatMul (per channel) + embedding table",
}


@dataclass
class Variant:
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

    as_dict = asdict


def input_names(model: SentenceTransformer) -> list[str]:
    token_types = "token_type_ids" in getattr(model.tokenizer, "model_input_names", ())
    return ["input_ids", "attention_mask"] + ["token_type_ids"] * token_types


def export_onnx(model: SentenceTransformer, path: str | Path, opset: int = 17) -> Path:
    """The transformer (ids -> token embeddings) as ONNX with dynamic batch and sequence axes, traced
    on a padded batch (the attention mask path is recorded); TorchScript exporter: no onnxscript."""
    import warnings

    import torch

    path, names, auto = Path(path), input_names(model), model[0].auto_model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.auto(**dict(zip(names, inputs, strict=True))).last_hidden_state  # (B, T, H)

    enc = model.tokenizer(
        ["a short one", "a somewhat longer example sentence to pad against"],
        padding=True,
        return_tensors="pt",
    )
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    opts = dict(input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=opset)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(Wrapper(), tuple(enc[n] for n in names), str(path), dynamo=False, **opts)
    return path


def quantize_onnx_int8(src: str | Path, dst: str | Path, per_channel: bool = True) -> Path:
    """onnxruntime's dynamic int8 quantization: MatMul weights int8 (activations quantized per
    call, MatMulInteger) and, by ORT's defaults, the embedding tables (Gather) in uint8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel)
    return Path(dst)


def onnx_embed(
    model: SentenceTransformer, path: str | Path, *, threads: int = 1, batch_size: int = 64
) -> Embed:
    """``model.encode`` with its transformer swapped for an ONNX graph in onnxruntime."""
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    if missing := set(inputs) - set(input_names(model)):
        raise ValueError(f"{path} wants inputs {sorted(missing)} the model's tokenizer does not make.")

    class OnnxTransformer(torch.nn.Module):
        def __init__(self, transformer: Any) -> None:
            super().__init__()
            self.preprocess, self.tokenizer = transformer.preprocess, transformer.tokenizer
            self.max_seq_length = transformer.max_seq_length

        def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
            hidden = session.run(None, {n: features[n].numpy().astype(np.int64) for n in inputs})[0]
            return {**features, "token_embeddings": torch.from_numpy(hidden)}  # (B, T, H)

    swapped = SentenceTransformer(modules=[OnnxTransformer(model[0]), *list(model)[1:]], device="cpu")
    return torch_embed(swapped, batch_size)


def folder_bytes(path: str | Path, weights_only: bool = False) -> int:
    files = [p for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files if not weights_only or p.name.endswith(WEIGHT_SUFFIXES))


def _save_without_weights(reference: SentenceTransformer, folder: Path) -> None:
    """Everything ``reference.save`` writes (configs, tokenizer, pooling) except its weights."""
    reference.save(str(folder))
    for p in folder.iterdir():
        if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES):
            p.unlink()


def save_model(model: SentenceTransformer, folder: str | Path, reference: SentenceTransformer) -> Path:
    """Save ``model`` (``reference``: its float32 original). Safetensors cannot hold dynamic int8
    Linear layers, so an int8 model is the reference's folder without weights plus the transformer's
    state dict in ``model.int8.pt``, read by :func:`load_int8_weights`."""
    import torch

    folder = Path(folder)
    if detect_weight_precision(model) != "int8":
        model.save(str(folder))
    else:
        _save_without_weights(reference, folder)
        torch.save(model[0].auto_model.state_dict(), folder / INT8_WEIGHTS)
    return folder


def load_int8_weights(reference: SentenceTransformer, folder: str | Path) -> SentenceTransformer:
    import torch

    model = apply_weight_precision(copy.deepcopy(reference), "int8")
    model[0].auto_model.load_state_dict(torch.load(Path(folder) / INT8_WEIGHTS, weights_only=True))
    return model


def _layer_owner(auto_model) -> Any:
    """The module whose ``layer`` is the transformer's layer list."""
    for owner_name in ("encoder", "transformer"):  # BERT/MPNet/XLM-R; DistilBERT
        if hasattr(owner := getattr(auto_model, owner_name, None), "layer"):
            return owner
    raise ValueError(
        f"Cannot find the layer list of {type(auto_model).__name__}: layer dropping supports BERT-style "
        f"(encoder.layer) and DistilBERT-style (transformer.layer) models."
    )


def drop_layers(model: SentenceTransformer, keep: Sequence[int]) -> SentenceTransformer:
    """Keep only the transformer layers ``keep`` (0-based), in place, no retraining; the config's
    layer count follows, so the model saves and loads as a smaller model."""
    import torch

    auto = model[0].auto_model
    owner = _layer_owner(auto)
    layers, keep = owner.layer, list(keep)
    if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise ValueError(
            f"keep={keep} must be increasing, distinct layer indices in [0, {len(layers) - 1}] ({len(layers)} layers)."
        )
    owner.layer = torch.nn.ModuleList([layers[i] for i in keep])
    for name in ("num_hidden_layers", "n_layers"):  # BERT-style; DistilBERT
        if hasattr(auto.config, name):
            setattr(auto.config, name, len(keep))
    return model


def every_other_layer(n_layers: int, offset: int = 1) -> list[int]:
    """Offset 1 keeps the last layer (1, 3, 5 of 6), offset 0 the first."""
    return list(range(offset, n_layers, 2))


def torch_embed(model: SentenceTransformer, batch_size: int = 64) -> Embed:
    opts = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": False}
    return lambda texts: np.asarray(model.encode(list(texts), **opts), dtype=np.float32)


def build_variants(
    model: SentenceTransformer,
    workdir: str | Path,
    *,
    names: Sequence[str] = VARIANTS,
    reference_onnx: dict[str, Path] | None = None,
    batch_size: int = 64,
) -> list[Variant]:
    """Build and save each named variant of the float32 ``model`` under ``workdir``. ``drop-odd``
    drops layers 1, 3, 5 (1-based; the last stays), ``drop-even`` 2, 4, 6; ``reference_onnx``: name ->
    a prebuilt ONNX transformer of the same architecture and tokenizer."""
    workdir, export = Path(workdir), Path(workdir) / "_export" / "model.onnx"
    n_layers = len(_layer_owner(model[0].auto_model).layer)
    onnx = {n: (export, shutil.copyfile if n == "onnx-fp32" else quantize_onnx_int8) for n in names}
    prebuilt = {n: (Path(src), shutil.copyfile) for n, src in (reference_onnx or {}).items()}
    variants: list[Variant] = []
    for name in [*names, *prebuilt]:
        if name not in VARIANTS and name not in prebuilt:
            raise ValueError(f"Unknown variant {name!r}: choose {', '.join(VARIANTS)}.")
        folder, desc = workdir / name, DESCRIPTIONS.get(name, "")
        shutil.rmtree(folder, ignore_errors=True)
        if name.startswith("onnx-") or name in prebuilt:  # the model's configs + an ONNX transformer
            src, make = prebuilt.get(name) or onnx[name]
            if name in prebuilt:
                desc = f"prebuilt ONNX file ({src.parent.name}), onnxruntime"
            elif not export.exists():
                export_onnx(model, export)
            _save_without_weights(model, folder)
            make(src, folder / "model.onnx")
            embed = onnx_embed(model, folder / "model.onnx", batch_size=batch_size)
            variants.append(Variant(name, desc, embed, folder))
            continue
        if name.startswith("drop-"):
            keep = every_other_layer(n_layers, offset=1 if name == "drop-odd" else 0)
            reduced = drop_layers(copy.deepcopy(model), keep)
            desc = f"layers {', '.join(str(i + 1) for i in keep)} of {n_layers} kept, no retraining"
        else:
            reduced = apply_weight_precision(copy.deepcopy(model), name)
        variants.append(
            Variant(name, desc, torch_embed(reduced, batch_size), save_model(reduced, folder, model))
        )
    shutil.rmtree(workdir / "_export", ignore_errors=True)
    return variants


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
    """Seconds each embedder takes on ``texts``: ``repeats`` rounds, every embedder once a round,
    the order rotated by one each round (no embedder always runs first or last)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    names = list(embeds)
    for name in names:  # warm-up: first-call allocations and lazy initialisation
        embeds[name](texts[: min(len(texts), 8)])
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
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
    """Bytes, latency, agreement with ``reference`` and Spearman of every variant. With ``pairs``
    (sentence1, sentence2, gold) the Spearman is scored from the probe embeddings, so
    ``probe_texts`` must hold both sides (:func:`pair_texts`)."""
    import torch
    from scipy.stats import spearmanr

    if reference not in (names := sorted(v.name for v in variants)):
        raise ValueError(f"The reference variant {reference!r} is not among {names}.")
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
        spearman = None
        if pairs is not None:
            s1, s2, gold = pairs
            cos = paired_cosine(emb[v.name][[index[t] for t in s1]], emb[v.name][[index[t] for t in s2]])
            spearman = float(spearmanr(np.asarray(gold, np.float64), cos).statistic)
        sizes = (folder_bytes(v.folder), folder_bytes(v.folder, weights_only=True))
        latency = (statistics.median(seconds[v.name]), seconds[v.name], len(latency_texts))
        agreement = cosine_agreement(emb[reference], emb[v.name])
        results.append(VariantResult(v.name, v.description, *sizes, *latency, *agreement, spearman))
    return results


def pair_texts(s1: Sequence[str], s2: Sequence[str]) -> list[str]:
    """Distinct texts of both sides of scored pairs, in first-seen order."""
    return list(dict.fromkeys([*s1, *s2]))


def markdown_table(results: Sequence[VariantResult], reference: str = "fp32") -> str:
    """The results as a Markdown table, sizes and speed relative to ``reference``."""
    ref = next(r for r in results if r.name == reference)
    head = "variant | what | folder MB | weights MB | size vs fp32 | latency s (median) | speed vs fp32"
    rows = [f"| {head} | STS-B Spearman | change (points) | cosine to fp32 mean / min |", "|" + " --- |" * 10]
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
