"""Saved indexes: every kind reads back searching exactly as built; a second retrieval job loads the
first one's index and scores the same; a damaged file is rebuilt; the GPU decision, without a GPU."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from embedlab.encode.cache import EmbeddingCache, _file_sha256
from embedlab.errors import ConfigError
from embedlab.eval import index_store
from embedlab.eval.index import INDEX_KINDS, index_bytes, index_spec, search
from embedlab.eval.index_store import SUFFIX, index_device, ready_index, to_device

SMALL = {"nlist": 8, "nprobe": 4}  # IVF cells a 400-document corpus can train
SPECS = [index_spec(k, **{p: v for p, v in SMALL.items() if p in e.defaults}) for k, e in INDEX_KINDS.items()]
SPECS += [index_spec("ivf_pq", **SMALL, rescore_multiplier=4), index_spec("binary", rescore_multiplier=0)]


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((440, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x[:400], x[400:]


@pytest.mark.parametrize("spec", SPECS, ids=[s.tag for s in SPECS])
def test_a_saved_index_reads_back_searching_exactly_as_built(spec, vectors, tmp_path: Path) -> None:
    docs, queries = vectors
    cache = EmbeddingCache(tmp_path)
    built, first = ready_index(spec, docs, cache=cache, key="k" * 32)
    loaded, second = ready_index(spec, docs, cache=cache, key="k" * 32)
    assert (first["source"], second["source"]) == ("built", "loaded")
    assert (
        first["path"] == second["path"] and first["path"].endswith(SUFFIX) and Path(first["path"]).is_file()
    )
    assert first["load_s"] == 0.0 < second["load_s"] and first["device"] == second["device"] == "cpu"
    for got, want in zip(search(loaded, queries, 10), search(built, queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)  # ids and scores, bit for bit
    assert (loaded.params, loaded.build_s, loaded.n_docs, loaded.dim) == (
        built.params,
        built.build_s,
        built.n_docs,
        built.dim,
    )
    assert (index_bytes(loaded), loaded.rescore_bytes) == (index_bytes(built), built.rescore_bytes)


def test_without_a_cache_it_builds_and_saves_nothing(vectors, tmp_path: Path) -> None:
    for cache in (None, EmbeddingCache(None)):
        _, how = ready_index(index_spec("hnsw"), vectors[0], cache=cache, key="k" * 32)
        assert how["source"] == "built" and how["path"] is None


@pytest.mark.parametrize("damage", ["truncated", "garbage with a matching checksum"])
def test_a_damaged_saved_index_is_rebuilt_with_a_warning(damage, vectors, tmp_path: Path, caplog) -> None:
    docs, queries = vectors
    cache, spec = EmbeddingCache(tmp_path), index_spec("sq8")  # deterministic: rebuilt equals built
    built, how = ready_index(spec, docs, cache=cache, key="d" * 32)
    path = Path(how["path"])
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    else:  # passes the checksum, fails in faiss's reader
        path.write_bytes(b"not a faiss index")
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) | {"sha256": _file_sha256(path)}
        meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        again, how = ready_index(spec, docs, cache=cache, key="d" * 32)
    assert how["source"] == "built" and cache.stats.n_corrupt_rebuilt == 1
    assert "is corrupt" in caplog.text
    assert ready_index(spec, docs, cache=cache, key="d" * 32)[1]["source"] == "loaded"  # saved anew
    for got, want in zip(search(again, queries, 10), search(built, queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)


GPU_KINDS = {"flat", "ivf_flat", "ivf_pq"}  # what faiss's GpuCloner copies (IndexFlat, IVFFlat, IVFPQ)


@pytest.mark.parametrize("kind", sorted(INDEX_KINDS))
def test_index_device_decision(kind: str) -> None:
    assert index_device("cpu", kind, 4) == ("cpu", None)
    for asked in ("cuda", "auto"):
        device, why = index_device(asked, kind, None)
        assert device == "cpu" and "no GPU support" in why and "gpu extra" in why
    assert index_device("auto", kind, 0) == ("cpu", "faiss sees no GPU")
    unsupported = ("cpu", f"faiss has no GPU version of the {kind} index")
    assert index_device("cuda", kind, 1) == (("cuda", None) if kind in GPU_KINDS else unsupported)


def test_cuda_without_gpu_faiss_warns_and_searches_on_the_cpu(vectors, caplog) -> None:
    built, _ = ready_index(index_spec("flat"), vectors[0], cache=None, key="")
    with caplog.at_level(logging.INFO):
        how = to_device(built, "cuda")  # this test environment has faiss-cpu
    assert how["device"] == "cpu" and "no GPU support" in how["fallback"]
    assert any(r.levelno == logging.WARNING and "index.device=cuda" in r.message for r in caplog.records)


def test_the_gpu_copy_searches_and_the_cpu_original_is_kept(vectors, monkeypatch) -> None:
    import faiss

    copies = []

    def to_gpu(res, device: int, index):  # a stand-in for faiss-gpu's copy: a clone, on the CPU
        if isinstance(index, faiss.IndexRefine):
            raise RuntimeError("This index type is not implemented on GPU.")
        copies.append(faiss.clone_index(index))
        return copies[-1]

    monkeypatch.setattr(index_store, "faiss_gpus", lambda: 1)
    monkeypatch.setattr(index_store, "_gpu_resources", lambda: None)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", to_gpu, raising=False)
    docs, queries = vectors
    built, how = ready_index(index_spec("ivf_flat", **SMALL), docs, cache=None, key="", device="cuda")
    assert how == {"source": "built", "load_s": 0.0, "path": None, "device": "cuda"}
    assert built.index is copies[0] and built.cpu is not built.index and index_bytes(built) > 0
    np.testing.assert_array_equal(search(built, queries, 5)[1], built.cpu.search(queries, 5)[1])
    refine, how = ready_index(
        index_spec("ivf_pq", **SMALL, rescore_multiplier=2), docs, cache=None, key="", device="cuda"
    )
    assert how["device"] == "cpu" and "not implemented on GPU" in how["fallback"] and refine.cpu_index is None


def test_index_settings_check_save_and_device() -> None:
    from embedlab.config.axes import IndexSettings

    assert IndexSettings.from_cfg({"kind": "hnsw", "device": "auto", "save": False}).device == "auto"
    for bad in ({"device": "gpu"}, {"save": "yes"}):
        with pytest.raises(ConfigError, match="index.device"):
            IndexSettings.from_cfg({"kind": "hnsw", **bad})


TIMED = re.compile(r"latency|qps|_per_s|n_texts_")  # wall-clock rates, and what the embedding cache did


def test_a_second_job_loads_the_saved_index_and_scores_the_same(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    def run(name: str, *overrides: str) -> tuple[dict[str, float], dict]:
        cache = f"paths.cache_dir={tmp_path / 'cache'}"
        cfg = make_cfg(
            "model=tiny_bert",
            "data=retrieval_mock",
            "logger=none",
            "index=hnsw",
            cache,
            *overrides,
            task="evaluate",
            output_dir=tmp_path / name,
        )
        metrics, _ = evaluate(cfg)
        return metrics, json.loads((tmp_path / name / "results.json").read_text())["meta"]["eval"][
            "test/mock"
        ]["index@hnsw"]

    first, built = run("a")
    second, loaded = run("b")
    assert (built["source"], loaded["source"]) == ("built", "loaded") and built["path"] == loaded["path"]
    scored = {k for k in first if not TIMED.search(k)}
    assert {
        "test/mock/ndcg@10@hnsw",
        "test/mock/index_recall@10@hnsw",
        "test/mock/index_build_s@hnsw",
    } <= scored
    assert {k: second[k] for k in scored} == {k: first[k] for k in scored}  # exactly: the same index
    _, other = run("c", "index.params.ef_search=16")  # another parameter: another index
    _, unsaved = run("d", "index.save=false")
    assert (other["source"], unsaved["source"], unsaved["path"]) == ("built", "built", None)
    assert other["path"] != built["path"]
