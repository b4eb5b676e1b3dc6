"""Weight precision of an encoder for evaluation: fp32, bf16 or dynamic int8 (never trained).

Only the transformer (``model[0]``) changes; embeddings come out float32 in every case. int8 (CPU
only) uses the deprecated torch.ao dynamic quantization; torchao's ``quantize_(model,
Int8DynamicActivationInt8WeightConfig())`` would replace :func:`_quantize_linear_int8` only.
"""

from __future__ import annotations

import functools
import platform
import warnings
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

WeightPrecision = Literal["fp32", "bf16", "int8"]
WEIGHT_PRECISIONS: tuple[str, ...] = get_args(WeightPrecision)

# what torch prints when torch.ao.quantization and its quantized tensors are used: silenced here only
_TORCH_AO_DEPRECATIONS = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel"),
)


def count_dynamic_int8_linear(model: SentenceTransformer) -> int:
    """Dynamically quantized Linear layers of the transformer (by class name: nothing deprecated imported)."""
    return sum(
        any(
            c.__module__.startswith("torch.ao.nn.quantized.dynamic") and c.__name__ == "Linear"
            for c in type(m).__mro__
        )
        for m in model[0].modules()
    )


def detect_weight_precision(model: SentenceTransformer) -> WeightPrecision:
    """The precision the transformer's weights are in now: int8 wins over bf16 over fp32."""
    import torch

    if count_dynamic_int8_linear(model):
        return "int8"
    return "bf16" if any(p.dtype == torch.bfloat16 for p in model[0].parameters()) else "fp32"


def weight_precision_summary(model: SentenceTransformer) -> dict[str, Any]:
    """What the model's weights really are, for results.json."""
    import torch

    return {
        "precision": detect_weight_precision(model),
        "n_int8_linear": count_dynamic_int8_linear(model),
        "n_float_linear": sum(isinstance(m, torch.nn.Linear) for m in model[0].modules()),
        "parameter_dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in model[0].parameters()}),
    }


def _outputs_to_float32(module: torch.nn.Module, args: Any, output: Any) -> Any:
    """Forward hook: bf16 token embeddings (B, T, H) back to float32 (pooling bf16 vectors costs up
    to 0.003 of cosine)."""
    import torch

    if isinstance(output, MutableMapping):  # a dict, or the tokenizer's BatchEncoding
        for key, value in output.items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16:
                output[key] = value.float()
    return output


def full_range_activations_supported() -> bool:
    """True where int8 activations may use all 8 bits: an x86 CPU with VNNI (int32 sums). Without it
    fbgemm's int16 sums saturate (255 * 127 * 2), so torch uses 7 bits: -0.015 mean cosine on MiniLM."""
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


@functools.cache
def _dynamic_linear_class(full_range: bool) -> type:
    """torch's dynamic int8 Linear, or a subclass whose activations use the full uint8 range."""
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    if not full_range:
        return DynamicLinear

    class FullRangeDynamicLinear(DynamicLinear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., in_features) float32
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)

        def _get_name(self) -> str:
            return "DynamicQuantizedLinear(full range)"

    return FullRangeDynamicLinear


def _quantize_linear_int8(module: torch.nn.Module) -> None:
    """Every nn.Linear inside ``module`` to dynamic int8, in place. Weights per output channel (mean
    cosine to float32 on MiniLM 0.994; per tensor 0.969), activations per call and tensor."""
    import torch

    with warnings.catch_warnings():
        for category, message in _TORCH_AO_DEPRECATIONS:
            warnings.filterwarnings("ignore", message=message, category=category)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        linear = _dynamic_linear_class(full_range_activations_supported())
        quantize_dynamic(
            module,
            {torch.nn.Linear: per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            mapping={torch.nn.Linear: linear},
            inplace=True,
        )


def apply_weight_precision(model: SentenceTransformer, precision: str) -> SentenceTransformer:
    """Put ``model``'s transformer weights in ``precision`` (in place); weights already reduced
    cannot be reduced again, and int8 needs the model on the CPU."""
    import torch

    if precision not in WEIGHT_PRECISIONS:
        raise ValueError(
            f"Unknown weight precision {precision!r}. Choose one of {', '.join(WEIGHT_PRECISIONS)} (weights=...)."
        )
    current = detect_weight_precision(model)
    if current == precision:
        return model
    if current != "fp32":
        raise ValueError(
            f"The model's weights are already {current}; {precision} must be applied to a float32 "
            f"model. Load a fresh copy of the model and apply {precision} to it."
        )
    first = model[0]
    if precision == "bf16":
        first.to(torch.bfloat16)
        first.register_forward_hook(_outputs_to_float32)
        return model
    if (device := next(first.parameters()).device).type != "cpu":
        raise ValueError(
            f"Dynamic int8 weights run on the CPU only; the model is on {device}. "
            f"Move it with model.to('cpu') or use weights=bf16 on a GPU."
        )
    _quantize_linear_int8(first)
    return model
