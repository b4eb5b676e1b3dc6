"""The size study's measurement code on the tiny BERT: every variant saves, loads back where
it claims to, embeds like its float32 original within its precision, and is measured."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.models.weight_precision import apply_weight_precision
from embedlab.studies.size import (
    build_variants,
    cosine_agreement,
    drop_layers,
    every_other_layer,
    export_onnx,
    folder_bytes,
    interleaved_latency,
    load_int8_weights,
    markdown_table,
    measure_variants,
    onnx_embed,
    pair_texts,
    save_model,
)
from embedlab.viz.plots import plot_size_quality

TEXTS = [
    "The government said on Tuesday it would review its refugee policy.",
    "Fire crews battled bushfires west of Sydney overnight.",
    "The minister refused to comment.",
    "Shares in the bank rose three per cent after the announcement of record profits for the year.",
    "Police arrested two men.",
    "A cricket match was abandoned because of rain.",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs: dict[str, Path]):
    model, _ = build_encoder(
        EncoderSpec(name="bert", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    return model


def test_folder_bytes_sums_file_sizes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "sub" / "config.json").write_bytes(b"y" * 24)
    assert folder_bytes(tmp_path) == 1024 == sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert folder_bytes(tmp_path, weights_only=True) == 1000


def test_int8_folder_is_smaller_and_loads_back(tiny, tmp_path: Path) -> None:
    int8 = apply_weight_precision(copy.deepcopy(tiny), "int8")
    fp32_dir, int8_dir = save_model(tiny, tmp_path / "fp32", tiny), save_model(int8, tmp_path / "int8", tiny)
    linear = sum(m.weight.numel() for m in tiny[0].modules() if isinstance(m, torch.nn.Linear))
    saved = folder_bytes(fp32_dir, weights_only=True) - folder_bytes(int8_dir, weights_only=True)
    assert saved > 0.5 * 3 * linear  # each Linear weight went from 4 bytes to 1 (plus scales, pickle)
    again = load_int8_weights(tiny, int8_dir)
    np.testing.assert_array_equal(again.encode(TEXTS), int8.encode(TEXTS))


def test_drop_layers_keeps_the_chosen_layers_and_reloads(tiny, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    n = tiny[0].auto_model.config.num_hidden_layers
    assert every_other_layer(6) == [1, 3, 5] and every_other_layer(6, offset=0) == [0, 2, 4]
    keep = [n - 1]
    dropped = drop_layers(copy.deepcopy(tiny), keep)
    assert len(dropped[0].auto_model.encoder.layer) == 1
    assert dropped[0].auto_model.encoder.layer[0] is not tiny[0].auto_model.encoder.layer[n - 1]  # a copy
    folder = save_model(dropped, tmp_path / "drop", tiny)
    loaded = SentenceTransformer(str(folder), device="cpu")
    assert loaded[0].auto_model.config.num_hidden_layers == 1
    np.testing.assert_allclose(loaded.encode(TEXTS), dropped.encode(TEXTS), atol=1e-6)
    with pytest.raises(ValueError, match="increasing, distinct layer indices"):
        drop_layers(copy.deepcopy(tiny), [1, 0])


def test_onnx_export_matches_torch(tiny, tmp_path: Path) -> None:
    path = export_onnx(tiny, tmp_path / "model.onnx")
    texts = TEXTS + [" ".join(TEXTS * 3)]  # one over the 64-token limit: truncated the same way
    np.testing.assert_allclose(onnx_embed(tiny, path, batch_size=3)(texts), tiny.encode(texts), atol=2e-5)


def test_every_variant_is_measured(tiny, tmp_path: Path) -> None:
    variants = build_variants(tiny, tmp_path / "variants", batch_size=4)
    s1, s2, gold = TEXTS[:3], TEXTS[3:], [0.1, 0.5, 0.9]
    results = measure_variants(variants, pair_texts(s1, s2), TEXTS, repeats=2, pairs=(s1, s2, gold))
    by = {r.name: r for r in results}
    assert list(by) == ["fp32", "bf16", "int8", "drop-odd", "drop-even", "onnx-fp32", "onnx-int8"]
    assert by["fp32"].cosine_mean == pytest.approx(1.0) and by["onnx-fp32"].cosine_min > 0.9999
    assert by["bf16"].cosine_min > 0.99
    for name in ("bf16", "int8", "onnx-int8", "drop-odd"):
        assert by[name].total_bytes < by["fp32"].total_bytes, name
    assert all(len(r.latency_rounds) == 2 and r.latency_s > 0 for r in results)
    assert all(r.spearman is not None and -1 <= r.spearman <= 1 for r in results)
    table = markdown_table(results)
    assert table.count("\n") == len(results) + 1 and "| int8 |" in table
    json.dumps([r.as_dict() for r in results])  # serialisable for results.json
    assert plot_size_quality(results, tmp_path / "plot.png", "tiny").stat().st_size > 0


def test_agreement_and_latency_inputs_are_checked() -> None:
    a = np.eye(3, dtype=np.float32)
    assert cosine_agreement(a, 2 * a) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="differ in shape"):
        cosine_agreement(a, a[:2])
    calls: list[str] = []
    seconds = interleaved_latency(
        {"a": lambda t: calls.append("a"), "b": lambda t: calls.append("b")}, ["x"], 3
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotated rounds
    assert {k: len(v) for k, v in seconds.items()} == {"a": 3, "b": 3}
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        interleaved_latency({"a": lambda t: None}, ["x"], 0)
