"""The fused bf16 CPU forwards (encode/cpu_kernels.py) compute what the layers they replace compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_fast import cosine, varied_texts

from embedlab.encode.cpu_kernels import available, fused_bert, short_attention
from embedlab.encode.fast import _call_state, fast_encode
from embedlab.models.encoder import EncoderSpec, build_encoder

pytestmark = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    reason="needs oneDNN bf16 kernels",
)


def test_short_attention_equals_sdpa() -> None:
    q, k, v = (torch.randn(5, 4, 9, 8) for _ in range(3))  # (n, heads, t, head size)
    keep = torch.arange(9)[None, :] < torch.tensor([9, 3, 5, 1, 8])[:, None]  # (n, keys): right padding
    bool_mask = keep[:, None, None, :].expand(5, 1, 9, 9)  # SDPA's (n, 1, queries, keys)
    additive = torch.zeros(5, 1, 1, 9).masked_fill(~keep[:, None, None, :], torch.finfo(torch.float32).min)
    for mask in (None, bool_mask, additive):
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
        out = short_attention(q, k, v, 0.3, mask)  # (n, t, heads * head size)
        torch.testing.assert_close(out, ref.transpose(1, 2).reshape(5, 9, 32), atol=1e-5, rtol=1e-5)


def test_minilm_fused_matches_unfused_and_is_undone(minilm) -> None:
    texts = varied_texts(60) + ["a long one: " + " ".join(varied_texts(3))]  # > 64 tokens: the SDPA branch
    plain, _ = fast_encode(minilm, texts, batch_size=16, fused=False)
    fused, _ = fast_encode(minilm, texts, batch_size=16)
    assert cosine(fused, plain).min() > 0.9995
    padded, _ = fast_encode(minilm, texts, batch_size=16, token_budget=None, sort_by_length=False)
    assert cosine(padded, plain).min() > 0.9995  # masked batches: SDPA with the mask
    with _call_state(minilm, None, bf16_weights=True), fused_bert(minilm[0].auto_model) as n:
        assert n == 4 * 6  # attention, intermediate, two outputs in each of the 6 layers
    assert not any("forward" in vars(m) for m in minilm.modules())
    assert next(minilm.parameters()).dtype == torch.float32


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "mpnet"])
def test_tiny_models_fused_or_untouched(tiny_model_dirs: dict[str, Path], arch: str) -> None:
    """Layers with BERT's code (RoBERTa's, MPNet's feed-forward copy it) run fused, others as before."""
    model, _ = build_encoder(
        EncoderSpec(name=arch, name_or_path=str(tiny_model_dirs[arch]), max_seq_length=64)
    )
    texts = varied_texts()
    plain, _ = fast_encode(model, texts, batch_size=8, fused=False)
    fused, _ = fast_encode(model, texts, batch_size=8)
    with _call_state(model, None, bf16_weights=True), fused_bert(model[0].auto_model) as n:
        assert available(model[0].auto_model)
    if arch != "distilbert":
        assert n > 0 and cosine(fused, plain).min() > 0.999
    else:
        assert n == 0 and np.array_equal(fused, plain)


def test_float32_weights_are_not_fused(minilm) -> None:
    with fused_bert(minilm[0].auto_model) as n:
        assert n == 0
