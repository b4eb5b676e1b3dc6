"""The fast encode path: tokenize once, batch by exact token length, transformer in bf16 (CUDA: autocast).
Why no library: ST's ``encode()`` sorts by characters and pads (39.5% padding on STS-B), ONNX / optimum
need an export per model; this is 3.5x ``encode()`` on STS-B (benchmarks/NOTES.md), head in float32."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from embedlab.console import progress, progress_enabled
from embedlab.devices import AUTOCAST_DTYPES
from embedlab.encode.stats import EncodeStats, encode_distinct
from embedlab.models.pooling import apply_head
from embedlab.models.weight_precision import detect_weight_precision

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# bf16: transformer weights and activations in bfloat16 for the call (~2x fp32 on AVX512-BF16,
# STS-B Spearman +0.01 point); bf16-autocast: float32 weights, matmuls cast to bf16 per call;
# fp16-autocast: what a bf16 request runs in on a GPU without bf16 (embedlab.devices.encode_precision)
Precision = Literal["fp32", "bf16", "bf16-autocast", "fp16-autocast"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "bf16-autocast")  # the encode.precision settings


@dataclass(frozen=True)
class Tokenized:
    features: dict[str, list[list[int]]]  # input_ids [, token_type_ids where the model takes them]
    lengths: np.ndarray  # (N,) int64 token counts before truncation


def tokenize_once(model: SentenceTransformer, texts: Sequence[str], limit: int) -> Tokenized:
    """Ids truncated at ``limit`` and true lengths from one pass; only longer texts are tokenized again."""
    tok = model.tokenizer
    want_types = "token_type_ids" in getattr(tok, "model_input_names", ())
    kwargs: dict[str, Any] = dict(
        add_special_tokens=True, return_attention_mask=False, return_token_type_ids=want_types, verbose=False
    )
    enc = tok(list(texts), truncation=False, **kwargs)
    features = {n: enc[n] for n in (["input_ids", "token_type_ids"] if want_types else ["input_ids"])}
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
    over = np.flatnonzero(lengths > limit)
    if len(over):
        cut = tok([texts[i] for i in over], truncation=True, max_length=limit, **kwargs)
        for name, rows in features.items():
            for k, i in enumerate(over):
                rows[i] = cut[name][k]
    return Tokenized(features, lengths)


def plan_batches(
    lengths: np.ndarray, batch_size: int, token_budget: int | None, sort_by_length: bool
) -> list[np.ndarray]:
    """Indices of each batch, longest first (peak memory shows at once). Sorted, a batch is one token
    length where ``batch_size // 2`` texts share it, else neighbours pooled, up to
    ``max(batch_size // 2, token_budget // longest)`` texts (``batch_size`` without a budget: long texts
    run in smaller batches, as oneDNN's K=384 GEMMs slow down past ~8k rows). Unsorted: ``batch_size``
    each."""
    n = len(lengths)
    if not sort_by_length:
        return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    order = np.argsort(-lengths, kind="stable")
    desc = -lengths[order]  # ascending, for searchsorted
    min_fill = max(1, batch_size // 2)
    batches: list[np.ndarray] = []
    start = 0
    while start < n:
        longest = int(-desc[start])
        cap = max(min_fill, token_budget // max(longest, 1)) if token_budget else batch_size
        end = start
        while end < n and end - start < min_fill:  # whole runs of one length, up to the cap
            run_end = int(np.searchsorted(desc, desc[end], side="right"))
            if end > start and run_end - end >= min_fill:
                break  # a common length comes next: leave it its own unpadded batches
            end = min(run_end, start + cap)
        batches.append(order[start:end])
        start = end
    return batches


def collate(
    model: SentenceTransformer, tokens: Tokenized, idx: np.ndarray, device: torch.device
) -> dict[str, Any]:
    rows = {name: [values[i] for i in idx] for name, values in tokens.features.items()}
    feats = model.tokenizer.pad(rows, padding=True, return_attention_mask=True, return_tensors="pt")
    return {**feats.to(device), "modality": "text"}


def unsupported_reason(model: SentenceTransformer) -> str | None:
    """Why the fast path cannot reproduce ``model.encode`` for this model (None: it can)."""
    from sentence_transformers.base.modules import Transformer

    first = model[0]
    if not isinstance(first, Transformer) or first.tokenizer is None:
        return f"its first module is {type(first).__name__}, not a text Transformer with a tokenizer"
    if getattr(model, "default_prompt_name", None):
        return f"it applies the default prompt {model.default_prompt_name!r}"
    if getattr(first, "processing_kwargs", None):
        return "its Transformer sets processing_kwargs"
    if getattr(model, "truncate_dim", None):
        return "it truncates embeddings (truncate_dim)"
    # a model loaded from disk carries {module index: []} here: only real kwargs count
    if any((getattr(model, "module_kwargs", None) or {}).values()):
        return "it passes keyword arguments to its modules"
    if any(type(m).__name__ == "Router" for m in model):
        return "it routes inputs between modules (Router)"
    return None


@contextlib.contextmanager
def _call_state(model: SentenceTransformer, threads: int | None, bf16_weights: bool) -> Iterator[None]:
    """For the call: eval mode, ``threads`` torch threads, and (``bf16_weights``) the transformer's float
    parameters and buffers in bfloat16 (cheaper than a copy); each submodule's mode and the float32
    masters put back."""
    import itertools

    import torch

    modes, before = [(m, m.training) for m in model.modules()], torch.get_num_threads()
    saved = []
    for t in itertools.chain(model[0].parameters(), model[0].buffers()) if bf16_weights else ():
        if t.is_floating_point() and t.dtype != torch.bfloat16:
            saved.append((t, t.data))
            t.data = t.data.to(torch.bfloat16)
    model.eval()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        for m, training in modes:
            m.training = training
        for t, data in saved:
            t.data = data


def _fused(model: SentenceTransformer, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """:func:`~embedlab.encode.cpu_kernels.fused_bert`, which itself leaves non-CPU or non-bf16 weights alone."""
    from embedlab.encode.cpu_kernels import fused_bert

    return fused_bert(model[0].auto_model) if enabled else contextlib.nullcontext()


def embed_unique(
    model: SentenceTransformer,
    tokens: Tokenized,
    batches: Sequence[np.ndarray],
    precision: Precision,
    what: str = "texts",
) -> np.ndarray:
    """The model's own modules on each batch; (N, D) float32. Only the transformer runs in bf16: pooling
    in bf16 costs up to 0.003 of cosine, float32 heads keep bf16 within 1e-4 of float32."""
    import torch

    device = model.device
    first, rest = model[0], list(model)[1:]
    out: np.ndarray | None = None
    dtype = getattr(torch, AUTOCAST_DTYPES.get(precision, "bfloat16"))
    autocast = torch.autocast(device.type, dtype=dtype, enabled=precision in AUTOCAST_DTYPES)
    # One autocast region for all batches: its bf16 copies of the weights are cast once.
    bar = progress(total=len(tokens.lengths), desc=f"encode {what}", unit="text", leave=False)
    with torch.inference_mode(), autocast, bar:
        for idx in batches:
            features = first(collate(model, tokens, idx, device))
            for key, value in features.items():  # token_embeddings: (B, T, H)
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    features[key] = value.float()
            features = apply_head(rest, features)  # pooling, dense, normalize, in float32
            emb = features["sentence_embedding"].float().cpu().numpy()  # (B, D)
            if out is None:
                out = np.empty((len(tokens.lengths), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
            bar.update(len(idx))
    assert out is not None  # encode_distinct asks for at least one text
    return out


def fast_encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    what: str = "texts",
    precision: Precision = "bf16",
    token_budget: int | None = 8192,
    threads: int | None = None,
    sort_by_length: bool = True,
    fused: bool = True,
) -> tuple[np.ndarray, EncodeStats]:
    """``model.encode``, faster, on the model's device; (N, D) float32 in input order. ``token_budget``:
    short texts share batches up to this many tokens; ``threads``: torch threads (busy machine: 1 can be
    >10x faster); ``fused``: bf16 BERT layers through :mod:`~embedlab.encode.cpu_kernels` where it applies."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")

    def embed(unique: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = tokenize_once(model, unique, limit)
        reason = unsupported_reason(model)
        if reason is not None:  # the reference path, in float32, as the reference encoder runs it
            log.info("fast_encode runs model.encode for %s: %s.", what, reason)
            kw = {"batch_size": batch_size, "convert_to_numpy": True, "show_progress_bar": progress_enabled()}
            return model.encode(unique, **kw), tokens.lengths
        batches = plan_batches(np.minimum(tokens.lengths, limit), batch_size, token_budget, sort_by_length)
        prec = precision
        if prec != "fp32" and detect_weight_precision(model) == "int8":
            # dynamic int8 Linear layers take float32 activations only: no bf16 cast or autocast
            log.info("fast_encode runs %s in float32 activations: the model has int8 weights.", what)
            prec = "fp32"
        with (
            _call_state(model, threads, bf16_weights=prec == "bf16"),
            _fused(model, fused and prec == "bf16"),
        ):
            return embed_unique(model, tokens, batches, prec, what), tokens.lengths

    return encode_distinct(model, texts, what, embed)
