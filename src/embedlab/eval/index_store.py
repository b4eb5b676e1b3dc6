"""Indexes built once and kept: a built FAISS index is written (``faiss.write_index``, a CPU index) into
the embedding cache under the key of what it holds (the embeddings' key, the cell, the kind and its
parameters, the faiss version), and a later job reads it instead of building; then, on request, it is
copied to the GPU for searching where faiss can (flat, IVF), else searched on the CPU, saying why.
A loaded binary index takes its rescoring vectors from the docs it is given: the same cached embeddings.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

import numpy as np

from embedlab.encode.cache import EmbeddingCache, cache_key
from embedlab.eval.arrays import as_f32
from embedlab.eval.index import INDEX_KINDS, BuiltIndex, IndexSpec, build_index

log = logging.getLogger(__name__)

SUFFIX = ".faiss"
DEVICES = ("cpu", "cuda", "auto")


def index_key(embeddings_key: str, tag: str, spec: IndexSpec) -> str:
    """The cache key of ``spec``'s index over the embeddings cached as ``embeddings_key``, reduced and
    quantized as cell ``tag`` says (``@pca128@hnsw``; a PCA's key is the same embeddings'), in this faiss."""
    import faiss

    params = json.dumps(spec.params, sort_keys=True)
    return cache_key("index", embeddings_key, tag, spec.kind, params, faiss.__version__)


def save_index(cache: EmbeddingCache, key: str, built: BuiltIndex) -> Any:
    """Write ``built``'s CPU index and what rebuilds the BuiltIndex; the file's path (None: no cache)."""
    import faiss

    binary = isinstance(built.cpu, faiss.IndexBinary)
    write = faiss.write_index_binary if binary else faiss.write_index
    info = {"what": "faiss index", "kind": built.spec.kind, "params": built.params, "n_docs": built.n_docs}
    info |= {"dim": built.dim, "binary": binary, "rescore": built.rescore_vectors is not None}
    info |= {"build_s": built.build_s, "faiss": faiss.__version__}
    return cache.put_file(key, lambda fh: write(built.cpu, faiss.PyCallbackIOWriter(fh.write)), info, SUFFIX)


def load_index(
    cache: EmbeddingCache, key: str, spec: IndexSpec, docs: np.ndarray
) -> tuple[BuiltIndex, str] | None:
    """The index saved under ``key`` over ``docs`` (N, d) and its file; None if absent, or corrupt (removed)."""
    import faiss

    found = cache.get_file(key, SUFFIX)
    if found is None:
        return None
    path, meta = found
    try:
        index = (faiss.read_index_binary if meta["binary"] else faiss.read_index)(str(path))
        if (index.ntotal, meta["n_docs"], meta["dim"]) != (len(docs), len(docs), docs.shape[1]):
            raise ValueError(f"it holds {index.ntotal} x {meta['dim']}, not the {docs.shape} docs")
    except (RuntimeError, ValueError, KeyError) as exc:  # faiss raises RuntimeError on a bad file
        cache.discard(key, exc, SUFFIX)
        return None
    rescore = docs if meta["rescore"] else None
    built = BuiltIndex(spec, index, len(docs), docs.shape[1], meta["params"], rescore, meta["build_s"])
    return built, str(path)


def ready_index(
    spec: IndexSpec, docs: Any, *, cache: EmbeddingCache | None, key: str, device: str = "cpu"
) -> tuple[BuiltIndex, dict[str, Any]]:
    """``spec``'s index of ``docs``: read from ``cache`` (None: build, save nothing) if saved under ``key``,
    else built and saved there; then placed on ``device``. Also what happened, for the results' details:
    source (built | loaded), path, load_s, device and any fallback. ``build_s`` stays the build's time."""
    x = as_f32(docs, "doc embeddings")
    start = time.perf_counter()
    loaded = load_index(cache, key, spec, x) if cache is not None and cache.root is not None else None
    how: dict[str, Any] = {"source": "loaded" if loaded else "built", "load_s": 0.0, "path": None}
    if loaded is not None:
        built, how["path"], how["load_s"] = *loaded, time.perf_counter() - start
        log.info("Read the %s index from the cache (%s) in %.2fs", spec.kind, how["path"], how["load_s"])
    else:
        built = build_index(spec, x)
        path = save_index(cache, key, built) if cache is not None else None
        how["path"] = None if path is None else str(path)
        if path is not None:
            log.info("Saved the %s index (built in %.2fs) to %s", spec.kind, built.build_s, path)
    return built, how | to_device(built, device)


def faiss_gpus() -> int | None:
    """GPUs faiss can use; None when this faiss is built without GPU support (faiss-cpu)."""
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else None


def index_device(requested: str, kind: str, n_gpus: int | None) -> tuple[str, str | None]:
    """Where a ``kind`` index searches when ``index.device=requested``: ``("cuda", None)``, or
    ``("cpu", why not the GPU)`` (None for an index asked on the CPU). ``n_gpus``: :func:`faiss_gpus`."""
    if requested == "cpu":
        return "cpu", None
    if n_gpus is None:
        why = "this faiss has no GPU support (faiss-cpu); install the gpu extra (README, GPU FAISS)"
    elif n_gpus == 0:
        why = "faiss sees no GPU"
    elif not INDEX_KINDS[kind].gpu:
        why = f"faiss has no GPU version of the {kind} index"
    else:
        return "cuda", None
    return "cpu", why


@functools.cache
def _gpu_resources() -> Any:
    import faiss

    return faiss.StandardGpuResources()  # kept for the process: GPU indexes use it while they live


def to_device(built: BuiltIndex, requested: str) -> dict[str, Any]:
    """Copy ``built`` to GPU 0 (the job's) when ``requested`` and possible, keeping its CPU original;
    else leave it on the CPU, logging why (a warning when cuda was asked for). The details to record."""
    device, why = index_device(requested, built.spec.kind, faiss_gpus())
    if device == "cuda":
        import faiss

        try:
            built.cpu_index, built.index = (
                built.index,
                faiss.index_cpu_to_gpu(_gpu_resources(), 0, built.index),
            )
        except RuntimeError as exc:  # parameters faiss's GPU code refuses (IVF-PQ with rescoring, ...)
            device, why = "cpu", f"faiss could not copy it to the GPU: {exc}"
    if why is not None:
        say = log.warning if requested == "cuda" else log.info
        say("index.device=%s: the %s index searches on the CPU: %s", requested, built.spec.kind, why)
    return {"device": device} | ({"fallback": why} if why else {})
