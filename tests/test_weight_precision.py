"""Model weight precision (weights = fp32 | bf16 | int8): the weights really
change, embeddings stay close to float32 on both encode paths, runs record it and cache it
under their own key, and training with reduced weights is refused at config time."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.encode.encoder import reference_encode as encode
from embedlab.encode.fast import fast_encode
from embedlab.errors import ConfigError
from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.models.weight_precision import (
    apply_weight_precision,
    count_dynamic_int8_linear,
    detect_weight_precision,
    weight_precision_summary,
)


def probe_texts(n: int = 48) -> list[str]:
    """Real English: sentences from the Lee news corpus that gensim ships (3 to ~60 words)."""
    from embedlab.models.tiny import training_corpus

    sentences = [s.strip() for doc in training_corpus() for s in doc.split(". ") if len(s.split()) >= 3]
    return sentences[:n]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def tiny_bert(tiny_model_dirs: dict[str, Path]):
    model, _ = build_encoder(
        EncoderSpec(name="bert", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    return model


def linear_weights(model) -> dict[str, torch.Tensor]:
    return {
        n: m.weight.detach().clone() for n, m in model[0].named_modules() if isinstance(m, torch.nn.Linear)
    }


def test_int8_replaces_every_linear_with_per_channel_int8_weights(tiny_bert) -> None:
    before = linear_weights(tiny_bert)
    model = apply_weight_precision(copy.deepcopy(tiny_bert), "int8")
    assert len(before) > 0 and count_dynamic_int8_linear(model) == len(before)
    assert not any(isinstance(m, torch.nn.Linear) for m in model[0].modules())
    modules = dict(model[0].named_modules())
    for name, w in before.items():
        qweight, _ = modules[name]._packed_params._weight_bias()
        assert qweight.dtype == torch.qint8 and qweight.qscheme() == torch.per_channel_affine
        # the int8 values are torch's own per-channel quantization of the float weight
        scales, zeros = qweight.q_per_channel_scales(), qweight.q_per_channel_zero_points()
        ref = torch.quantize_per_channel(w, scales.float(), zeros, axis=0, dtype=torch.qint8)
        assert torch.equal(qweight.int_repr(), ref.int_repr())
        assert (qweight.dequantize() - w).abs().max() <= scales.max() / 2 + 1e-6
    assert detect_weight_precision(model) == "int8"
    assert weight_precision_summary(model)["n_int8_linear"] == len(before)
    assert detect_weight_precision(tiny_bert) == "fp32"  # the original is untouched


def test_bf16_casts_the_transformer_and_returns_float32(tiny_bert) -> None:
    model = apply_weight_precision(copy.deepcopy(tiny_bert), "bf16")
    assert {p.dtype for p in model[0].parameters()} == {torch.bfloat16}
    assert weight_precision_summary(model)["parameter_dtypes"] == ["bfloat16"]
    emb, _ = encode(model, probe_texts(8))
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)  # normalised in float32


def test_no_deprecation_warning_escapes(tiny_bert) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = apply_weight_precision(copy.deepcopy(tiny_bert), "int8")
        encode(model, probe_texts(4))


def test_bad_precision_and_double_application_are_refused(tiny_bert) -> None:
    with pytest.raises(ValueError, match="Choose one of fp32, bf16, int8"):
        apply_weight_precision(copy.deepcopy(tiny_bert), "int4")
    model = apply_weight_precision(copy.deepcopy(tiny_bert), "int8")
    assert apply_weight_precision(model, "int8") is model  # already int8: nothing to do
    with pytest.raises(ValueError, match="already int8.*fresh copy"):
        apply_weight_precision(model, "bf16")


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_both_encode_paths_agree_with_float32_on_minilm(minilm, precision: str) -> None:
    texts = probe_texts()
    torch.set_num_threads(1)
    ref, _ = encode(minilm, texts)
    model = apply_weight_precision(copy.deepcopy(minilm), precision)
    ours, _ = encode(model, texts)
    fast, _ = fast_encode(model, texts, precision="bf16")  # int8: falls back to fp32
    floor = {"int8": (0.99, 0.98), "bf16": (0.999, 0.998)}[precision]  # (mean, min) cosine
    for emb in (ours, fast):
        cos = cosine(ref, emb)
        assert cos.mean() > floor[0] and cos.min() > floor[1], (precision, cos.mean(), cos.min())
    assert cosine(ours, fast).min() > 0.98  # int8 activation ranges depend on the batch


def test_encoder_key_differs_per_precision_and_is_stable(tiny_bert) -> None:
    from embedlab.encode.cache import encoder_key

    keys = {
        p: encoder_key(apply_weight_precision(copy.deepcopy(tiny_bert), p), "st-fp32", p)
        for p in ("fp32", "bf16", "int8")
    }
    assert len(set(keys.values())) == 3
    again = apply_weight_precision(copy.deepcopy(tiny_bert), "int8")
    assert encoder_key(again, "st-fp32", "int8") == keys["int8"]


def test_reduced_weights_with_fit_fail_at_config_time(make_cfg) -> None:
    from embedlab.config import check_config

    with pytest.raises(ConfigError, match="evaluation-only.*fit=true"):
        check_config(make_cfg("model=tiny_bert", "weights=int8"))
    with pytest.raises(ConfigError, match="weights=int4 is unknown. Choose fp32, bf16 or int8"):
        check_config(make_cfg("model=tiny_bert", "weights.name=int4", task="evaluate"))
    check_config(make_cfg("model=tiny_bert", "weights=bf16", task="evaluate"))
    check_config(make_cfg("model=tiny_bert", "weights=int8", "fit=false"))


def test_evaluate_run_records_int8_weights(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    def run(weights: str) -> dict:
        out = tmp_path / weights
        cfg = make_cfg("model=minilm", "data=lee", "logger=none", f"weights={weights}",
                       task="evaluate", output_dir=out)  # fmt: skip
        evaluate(cfg)
        return json.loads((out / "results.json").read_text())

    fp32, int8 = run("fp32"), run("int8")
    assert int8["meta"]["config"]["weights"]["name"] == "int8"
    assert (
        int8["meta"]["weights"]["precision"] == "int8" and int8["meta"]["weights"]["n_int8_linear"] == 37
    )  # 36 + the kept (frozen) pooler
    assert "weights" not in fp32["meta"]
    key = "test/lee/spearman_cosine"
    assert abs(int8["metrics"][key] - fp32["metrics"][key]) < 0.02, (
        int8["metrics"][key],
        fp32["metrics"][key],
    )


def test_int8_run_has_its_own_cache_key(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    cache = f"paths.cache_dir={tmp_path / 'cache'}"

    def run(name: str, weights: str) -> dict[str, float]:
        cfg = make_cfg("model=tiny_bert", "data=retrieval_mock", "index=none", "logger=none", cache,
                       f"weights={weights}", task="evaluate", output_dir=tmp_path / name)  # fmt: skip
        return evaluate(cfg)[0]

    fp32 = run("a", "fp32")
    int8 = run("b", "int8")  # another key: encodes everything again
    assert int8["test/mock/n_texts_from_cache"] == 0
    assert int8["test/mock/n_texts_encoded"] == fp32["test/mock/n_texts_encoded"] > 0
    again = run("c", "int8")  # the int8 entries are found
    assert again["test/mock/n_texts_encoded"] == 0
    assert again["test/mock/ndcg@10"] == pytest.approx(int8["test/mock/ndcg@10"])
