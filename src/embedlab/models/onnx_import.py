"""Turn a BERT sentence encoder exported to ONNX back into a Hugging Face model folder, once.

Nothing is guessed from names: the exporter stores each Linear weight as an anonymous, transposed
``onnx::MatMul_<n>``, named here by the ``<module>.bias`` its output is added to; the config comes
from the weights' shapes and the graph's constants.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embedlab.errors import ModelUnavailableError
from embedlab.resources import publish_dir

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bumped when the conversion's output changes
ST_PREFIX = "model.0.auto_model."  # torch.onnx.export of a SentenceTransformer names BERT's parameters so
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
MARKER = "embedlab_conversion.json"


class OnnxImportError(ModelUnavailableError):
    """The ONNX graph does not look like an exported BERT encoder."""


def _load_onnx(path: Path):
    try:
        import onnx
    except ImportError as exc:
        raise ModelUnavailableError(
            "Converting an ONNX model needs the `onnx` package. Fix: "
            "`.venv/bin/python -m pip install onnx==1.23.2` (pinned in requirements/lock.txt)."
        ) from exc
    if not Path(path).is_file():
        raise ModelUnavailableError(f"ONNX file {path} does not exist.")
    return onnx.load(str(path))


def onnx_bert_state_dict(model) -> dict[str, np.ndarray]:
    """BertModel parameter name -> array from an ``onnx.ModelProto``: named initializers keep their
    names (minus the ST prefix); each anonymous MatMul weight takes its bias's name."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers: dict[str, list] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)
    named = ("embeddings.", "encoder.")
    state = {
        k.removeprefix(ST_PREFIX): v for k, v in inits.items() if k.removeprefix(ST_PREFIX).startswith(named)
    }
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2 or node.input[1] not in inits:
            continue
        weight = inits[node.input[1]]
        if node.input[1].removeprefix(ST_PREFIX).startswith(named):
            raise OnnxImportError(
                f"MatMul {node.name} multiplies by the named tensor {node.input[1]}; "
                "expected an anonymous exported Linear weight."
            )
        adds = [n for n in consumers[node.output[0]] if n.op_type == "Add"]
        biases = [i for n in adds for i in n.input if i in inits and i.endswith(".bias")]
        if len(biases) != 1:
            raise OnnxImportError(
                f"Cannot name the weight {node.input[1]} of MatMul {node.name}: its output feeds "
                f"{len(biases)} named biases, expected exactly 1. Is this an exported BERT encoder?"
            )
        key = biases[0].removeprefix(ST_PREFIX).removesuffix(".bias") + ".weight"
        if key in state:
            raise OnnxImportError(f"Two MatMul weights map to {key}; the graph is not a plain BERT export.")
        if weight.ndim != 2 or weight.shape[1] != inits[biases[0]].shape[0]:
            raise OnnxImportError(
                f"{node.input[1]} has shape {weight.shape}, which does not match {biases[0]}."
            )
        state[key] = weight.T.copy()  # ONNX MatMul: x @ W with W (in, out); torch Linear: (out, in)
    return state


def _attribute(node, name: str, default: Any = None) -> Any:
    return next((a for a in node.attribute if a.name == name), default)


def infer_bert_config(model, state: dict[str, np.ndarray]) -> dict[str, Any]:
    """A ``BertConfig`` dict read from the weights' shapes and the graph's constants."""
    from onnx import numpy_helper

    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise OnnxImportError(f"Found encoder layers {layers}; expected 0..N-1.")
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    nodes = model.graph.node
    # Attention scores are divided by sqrt(head_size): that constant gives the head count.
    scalars = {t.name: t for t in model.graph.initializer if len(t.dims) == 0}
    for node in nodes:
        value = _attribute(node, "value")
        if node.op_type == "Constant" and value is not None and len(value.t.dims) == 0:
            scalars[node.output[0]] = value.t
    constants = {name: float(numpy_helper.to_array(t)) for name, t in scalars.items()}
    scales = {
        constants[n.input[1]]
        for n in nodes
        if n.op_type == "Div" and "/attention/self/" in n.name and n.input[1] in constants
    }
    if len(scales) != 1:
        raise OnnxImportError(
            f"Expected one attention scale (sqrt of the head size), found {sorted(scales)}."
        )
    head_size = round(next(iter(scales)) ** 2)
    if (
        head_size <= 0
        or hidden % head_size
        or not math.isclose(math.sqrt(head_size), next(iter(scales)), rel_tol=1e-6)
    ):
        raise OnnxImportError(f"Attention scale {scales} does not divide hidden size {hidden} into heads.")
    norms = [n for n in nodes if n.op_type == "LayerNormalization"]
    eps = {getattr(_attribute(n, "epsilon"), "f", 1e-5) for n in norms}
    if len(norms) != 1 + 2 * len(layers) or len(eps) != 1:
        raise OnnxImportError(
            f"Expected {1 + 2 * len(layers)} LayerNorms with one epsilon, found {len(norms)} / {eps}."
        )
    if all(n.op_type != "Erf" for n in nodes):  # BERT's exact gelu: x * 0.5 * (1 + erf(x / sqrt 2))
        raise OnnxImportError("No Erf op in the graph: the activation is not BERT's exact gelu.")
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "num_hidden_layers": len(layers),
        "num_attention_heads": int(hidden // head_size),
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "hidden_act": "gelu",
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": float(f"{next(iter(eps)):.6g}"),  # float32 attribute: 1e-12, not 9.99e-13
        "pad_token_id": 0,
    }


def _write_tokenizer(tokenizer_dir: Path, target: Path) -> None:
    for name in TOKENIZER_FILES:
        source = Path(tokenizer_dir) / name
        if not source.exists():
            raise ModelUnavailableError(f"Tokenizer file {source} is missing; cannot build the model folder.")
        shutil.copyfile(source, target / name)
    # the source has fixed padding/truncation baked in; sentence-transformers sets both per call
    spec = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    spec["padding"] = spec["truncation"] = None
    (target / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")


def convert_onnx_bert(
    onnx_path: Path,
    tokenizer_dir: Path,
    target: Path,
    *,
    max_seq_length: int = 128,
    pooling: str = "mean",
    source: str = "",
) -> Path:
    """Write ``target`` (a BertModel + sentence-transformers folder) from an ONNX export; a complete
    folder (``MARKER``, written last) is returned as it is."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer
    from transformers import BertConfig, BertModel

    target = Path(target)
    if (target / MARKER).exists():
        return target
    model = _load_onnx(Path(onnx_path))
    state = onnx_bert_state_dict(model)
    config = BertConfig(**infer_bert_config(model, state))
    bert = BertModel(config, add_pooling_layer=False)
    try:  # strict: every parameter present, none extra, each with its shape
        bert.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise OnnxImportError(f"ONNX weights do not form a BertModel: {str(exc)[:600]}") from exc
    log.info("Converting %s (%d layers) into %s (once)", onnx_path, config.num_hidden_layers, target)
    with publish_dir(target, MARKER) as staged:
        bert.save_pretrained(staged)
        _write_tokenizer(Path(tokenizer_dir), staged)
        # modules.json, sentence_bert_config.json, 1_Pooling/: ``SentenceTransformer(target)`` rebuilds it
        modules = [
            Transformer(str(staged), max_seq_length=max_seq_length),
            Pooling(config.hidden_size, pooling),
        ]
        SentenceTransformer(modules=modules, device="cpu").save(str(staged), create_model_card=False)
        files = {"onnx_sha256": Path(onnx_path), "vocab_sha256": Path(tokenizer_dir) / "vocab.txt"}
        marker = {
            "converter_version": CONVERTER_VERSION,
            "source": source,
            "onnx_file": Path(onnx_path).name,
            **{key: hashlib.sha256(file.read_bytes()).hexdigest() for key, file in files.items()},
        }
        (staged / MARKER).write_text(json.dumps(marker, indent=2))
    return target
