"""Fused bf16 CPU forwards for BERT-style layers, for fast_encode's inference call: Q, K and V as one GEMM,
GELU and the residual add in the GEMM's epilogue (oneDNN), weights packed once per call, and attention of
short batches as two batched GEMMs around a float32 softmax (SDPA's CPU kernel pays per head and
dominates at 14 tokens). Only modules whose forward is transformers' BERT code (same bytecode) are
patched, and each falls back to its own forward for anything but plain inference; benchmarks/NOTES.md."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

SHORT_ATTENTION = 64  # tokens: batches up to this length skip SDPA (slower there, faster above)


def available(module: torch.nn.Module) -> bool:
    """oneDNN with bf16 kernels, and ``module``'s weights in bf16 on the CPU."""
    weight = next((p for p in module.parameters() if p.dim() == 2), None)
    return (
        weight is not None
        and weight.device.type == "cpu"
        and weight.dtype == torch.bfloat16
        and torch.backends.mkldnn.is_available()
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def short_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q k^T * scale [+ mask]) v; (n, h, t, d) each -> (n, t, h * d); ``mask``: SDPA's (n, 1, t, t),
    bool (True: attend) or additive. Scores are laid out (keys, queries) so the softmax runs across rows,
    in float32."""
    n, h, t, d = q.shape
    q, k, v = (x.reshape(n * h, t, d) for x in (q, k, v))
    s = torch.bmm(k, q.transpose(1, 2)).float().mul_(scale)  # (n*h, keys, queries)
    if mask is not None:
        heads, mask = s.view(n, h, t, t), mask.transpose(-1, -2)
        if mask.dtype == torch.bool:
            heads.masked_fill_(~mask, float("-inf"))
        else:
            heads.add_(mask)
    s = s.sub_(s.amax(1, keepdim=True)).exp_()
    p = s.div_(s.sum(1, keepdim=True)).to(v.dtype)
    return torch.bmm(p.transpose(1, 2), v).view(n, h, t, d).transpose(1, 2).reshape(n, t, h * d)


def _same_code(cls: type, reference: type) -> bool:
    a, b = cls.forward.__code__, reference.forward.__code__  # type: ignore[attr-defined]
    return a.co_code == b.co_code and a.co_names == b.co_names and a.co_consts == b.co_consts


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def _self_attention(m: Any) -> Callable[..., Any] | None:
    if getattr(m, "is_causal", False) or getattr(m, "is_decoder", False):
        return None
    w = _pack(torch.cat([m.query.weight, m.key.weight, m.value.weight]))
    b = torch.cat([m.query.bias, m.key.bias, m.value.bias]).detach()
    heads, size, own = m.num_attention_heads, m.attention_head_size, type(m).forward

    def forward(hidden_states, attention_mask=None, past_key_values=None, **kwargs):  # type: ignore[no-untyped-def]
        if m.training or past_key_values is not None or kwargs.get("encoder_hidden_states") is not None:
            return own(m, hidden_states, attention_mask, past_key_values, **kwargs)
        n, t, _ = hidden_states.shape
        qkv = torch.ops.mkldnn._linear_pointwise(hidden_states, w, b, "none", [], "")
        q, k, v = qkv.view(n, t, 3, heads, size).permute(2, 0, 3, 1, 4)  # each (n, heads, t, size)
        if t <= SHORT_ATTENTION:
            return short_attention(q, k, v, m.scaling, attention_mask), None
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, scale=m.scaling
        )
        return out.transpose(1, 2).reshape(n, t, heads * size), None

    return forward


def _intermediate(m: Any) -> Callable[..., Any] | None:
    from transformers.activations import GELUActivation

    act = m.intermediate_act_fn
    if not (isinstance(act, GELUActivation) and act.act is torch.nn.functional.gelu):
        return None  # only exact GELU has a fused epilogue here
    w, b = _pack(m.dense.weight), m.dense.bias.detach()
    return lambda hidden_states: torch.ops.mkldnn._linear_pointwise(hidden_states, w, b, "gelu", [], "none")


def _output(m: Any) -> Callable[..., Any]:
    w, b, own = _pack(m.dense.weight), m.dense.bias.detach(), type(m).forward

    def forward(hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        if m.training:
            return own(m, hidden_states, input_tensor)
        fused = torch.ops.mkldnn._linear_pointwise.binary(hidden_states, input_tensor, w, b, "add")
        return m.LayerNorm(fused)

    return forward


@contextlib.contextmanager
def fused_bert(module: torch.nn.Module) -> Iterator[int]:
    """Within: ``module``'s BERT self-attention, intermediate and output layers run fused (see the module
    docstring); yields how many layers were patched (0 when :func:`available` is false)."""
    from transformers.models.bert import modeling_bert as bert

    builders = [
        (bert.BertSelfAttention, _self_attention),
        (bert.BertIntermediate, _intermediate),
        (bert.BertSelfOutput, _output),
        (bert.BertOutput, _output),
    ]
    config = getattr(module, "config", None)
    ok = available(module) and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")
    patched = []
    with torch.no_grad():
        for m in module.modules() if ok else ():
            build = next((f for cls, f in builders if _same_code(type(m), cls)), None)
            forward = build(m) if build is not None and "forward" not in vars(m) else None
            if forward is not None:
                m.forward = forward
                patched.append(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.forward
