"""ONNX variants of an encoder for the size study: export the transformer (torch's exporter),
quantize it to int8 (onnxruntime), and run it behind the model's own tokenizer and pooling modules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedlab.models.pooling import apply_head

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def input_names(model: SentenceTransformer) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in getattr(model.tokenizer, "model_input_names", ()):
        names.append("token_type_ids")
    return names


def export_onnx(model: SentenceTransformer, path: str | Path, opset: int = 17) -> Path:
    """The transformer (ids -> token embeddings) as ONNX with dynamic batch and sequence axes, traced
    on a padded batch (the attention mask path is recorded); TorchScript exporter: no onnxscript."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = input_names(model)
    auto = model[0].auto_model.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.auto(**dict(zip(names, inputs, strict=True))).last_hidden_state  # (B, T, H)

    samples = ["a short one", "a somewhat longer example sentence to pad against"]
    enc = model.tokenizer(samples, padding=True, return_tensors="pt")
    args = tuple(enc[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    opts = dict(input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=opset)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(Wrapper(), args, str(path), dynamo=False, **opts)
    return path


def quantize_onnx_int8(src: str | Path, dst: str | Path, per_channel: bool = True) -> Path:
    """onnxruntime's dynamic int8 quantization: MatMul weights int8 (activations quantized per
    call, MatMulInteger) and, by ORT's defaults, the embedding tables (Gather) in uint8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel)
    return Path(dst)


class OnnxEncoder:
    """An ONNX transformer in onnxruntime behind ``model``'s own tokenizer, batching and
    pooling modules: what ``model.encode`` does, with the transformer swapped."""

    def __init__(
        self, model: SentenceTransformer, path: str | Path, *, threads: int = 1, batch_size: int = 64
    ):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        if missing := set(self.inputs) - set(input_names(model)):
            raise ValueError(f"{path} wants inputs {sorted(missing)} the model's tokenizer does not make.")
        self.model, self.batch_size = model, batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model, limit = self.model, int(self.model.max_seq_length)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as SentenceTransformer.encode sorts
        out: np.ndarray | None = None
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [texts[i] for i in idx]
            enc = model.tokenizer(batch, padding=True, truncation=True, max_length=limit, return_tensors="np")
            hidden = self.session.run(None, {n: enc[n].astype(np.int64) for n in self.inputs})[0]  # (B, T, H)
            features: dict[str, Any] = {
                "token_embeddings": torch.from_numpy(hidden).float(),
                "attention_mask": torch.from_numpy(enc["attention_mask"].astype(np.int64)),
            }
            with torch.inference_mode():
                features = apply_head(list(model)[1:], features)  # pooling, dense, normalize
            emb = features["sentence_embedding"].float().numpy()  # (B, D)
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
        return out if out is not None else np.zeros((0, 0), np.float32)
