"""Encode once, score many: an on-disk embedding cache and the one family of cache keys (:func:`cache_key`
of the encoder's content, its encode path and the texts), so every cell reuses float32 embeddings and a
fine-tuned model never hits its base model's. Files are renamed into place and checksummed."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

# Texts per encode call in Encoder.encode_cached (bounds memory); shards cut at these boundaries too
CHUNK_SIZE = 4096


def weights_digest(model: SentenceTransformer) -> hashlib._Hash:
    """sha256 over every parameter and buffer (int8 layers: values, scales, zero points)."""
    import torch

    digest = hashlib.sha256()

    def update(value) -> None:  # a tensor, or what int8 Linear layers keep: dtypes, tuples
        if isinstance(value, (tuple, list)):
            for v in value:
                update(v)
        elif not isinstance(value, torch.Tensor):
            digest.update(repr(value).encode())
        elif value.is_quantized:  # int8 values plus their scales and zero points
            update(value.int_repr())
            q = value.qscheme()
            per_channel = q in (torch.per_channel_affine, torch.per_channel_symmetric)
            update(value.q_per_channel_scales() if per_channel else torch.tensor(value.q_scale()))
            update(value.q_per_channel_zero_points() if per_channel else torch.tensor(value.q_zero_point()))
        else:
            t = value.detach().cpu().contiguous()
            digest.update(t.float().numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes())

    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        update(value)
    return digest


def encoder_key(
    model: SentenceTransformer,
    tag: str,
    weight_precision: str = "fp32",
    *,
    weights: hashlib._Hash | None = None,
) -> str:
    """``<content hash>:<tag>`` over parameters, module settings, weight precision and encode path;
    ``weights``: a precomputed :func:`weights_digest` (encoders differing only in pooling share it)."""
    digest = (weights or weights_digest(model)).copy()
    settings = [repr(m) for m in model]  # module configs: pooling mode, dims, normalisation
    digest.update(json.dumps([settings, int(model.max_seq_length or 0), weight_precision]).encode())
    return f"{digest.hexdigest()[:24]}:{tag}"


def texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()[:24]


def cache_key(*parts: str) -> str:
    """The key of anything cached, from the keys it derives from and what it is (``shard0of4``, ``pca``)."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


def entry_key(model_key: str, texts: Sequence[str]) -> str:
    """The cache key of the embeddings of ``texts`` (in this order) under one encoder."""
    return cache_key(model_key, texts_key(texts))


@dataclass
class CacheStats:
    n_encoded: int = 0  # texts run through the model in this process
    n_from_cache: int = 0  # texts whose embeddings were read from disk
    n_corrupt_rebuilt: int = 0


class EmbeddingCache:
    """``get``/``put`` float32 (N, D) arrays under ``root``; ``root=None`` disables it. Other files
    (saved indexes) are entries too: ``put_file``/``get_file`` with their own suffix, same checksums."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None
        self.stats = CacheStats()

    def _paths(self, key: str, suffix: str = ".npy") -> tuple[Path, Path]:
        assert self.root is not None
        folder = self.root / key[:2]
        return folder / f"{key}{suffix}", folder / f"{key}.json"

    def has(self, key: str, suffix: str = ".npy") -> bool:
        """Whether a complete entry exists (its metadata is written last), without reading it."""
        return self.root is not None and all(p.exists() for p in self._paths(key, suffix))

    def remove(self, key: str, suffix: str = ".npy") -> None:
        if self.root is not None:
            for path in self._paths(key, suffix):
                path.unlink(missing_ok=True)

    def discard(self, key: str, why: object, suffix: str = ".npy") -> None:
        """Remove a corrupt entry, saying so: the caller rebuilds it."""
        log.warning("Cache entry %s%s is corrupt (%s); removing and rebuilding it.", key, suffix, why)
        self.stats.n_corrupt_rebuilt += 1
        self.remove(key, suffix)

    def meta(self, key: str) -> dict:
        """The metadata stored with an entry (``{}`` if absent or unreadable)."""
        try:
            return json.loads(self._paths(key)[1].read_text()) if self.root is not None else {}
        except (OSError, ValueError):
            return {}

    def get_file(self, key: str, suffix: str = ".npy") -> tuple[Path, dict] | None:
        """The entry's file, its checksum verified, and its metadata; None if absent or corrupt (removed)."""
        if not self.has(key, suffix):
            return None
        data_path, meta_path = self._paths(key, suffix)
        try:
            meta = json.loads(meta_path.read_text())
            if _file_sha256(data_path) != meta["sha256"]:  # streamed: no second copy in memory
                raise ValueError("checksum mismatch")
            return data_path, meta
        except (ValueError, KeyError, OSError) as exc:
            self.discard(key, exc, suffix)
            return None

    def get(self, key: str) -> np.ndarray | None:
        found = self.get_file(key)
        if found is None:
            return None
        try:
            arr = np.load(found[0], allow_pickle=False)
            if list(arr.shape) != found[1]["shape"]:
                raise ValueError("shape mismatch")
            return arr
        except (ValueError, KeyError, OSError) as exc:
            self.discard(key, exc)
            return None

    def put_file(
        self, key: str, write: Callable[[BinaryIO], object], info: dict, suffix: str = ".npy"
    ) -> Path | None:
        """Stream ``write`` into the entry's file, then its metadata (which marks it complete)."""
        if self.root is None:
            return None
        data_path, meta_path = self._paths(key, suffix)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(data_path, write)
        meta = {"sha256": _file_sha256(data_path), **info}
        _write_atomically(meta_path, lambda fh: fh.write(json.dumps(meta).encode()))
        return data_path

    def put(self, key: str, emb: np.ndarray, info: dict | None = None) -> None:
        arr = np.ascontiguousarray(emb, dtype=np.float32)  # no copy when it already is
        # streamed to disk (no .npy copy in memory)
        self.put_file(
            key, lambda fh: np.save(fh, arr, allow_pickle=False), {"shape": list(arr.shape), **(info or {})}
        )


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write to a temporary name beside ``path``, then rename: no reader sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
