"""Input checks and row normalisation for (N, D) embedding arrays, shared by the metrics and
studies so each does not re-spell them (one error message for one mistake)."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to CPU first."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x, dtype=dtype)


def as_f32(x: Any, what: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 (N, D) array (what faiss and the dot products take)."""
    a = np.ascontiguousarray(as_numpy(x, np.float32))
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n, dim), got shape {a.shape}")
    return a


def as_matrix(x: Any, what: str = "embeddings", *, min_rows: int = 1) -> np.ndarray:
    """``x`` as a finite float64 (N, D) array with N >= ``min_rows``; raises ValueError otherwise."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < min_rows:
        need = "non-empty" if min_rows == 1 else f"N >= {min_rows}"
        raise ValueError(f"{what} must be a 2-D (N, D) array ({need}), got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} hold NaN or infinite values.")
    return arr


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm (zero rows stay zero instead of becoming NaN)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
