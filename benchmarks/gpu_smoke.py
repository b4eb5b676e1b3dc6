"""GPU smoke check, for users with a CUDA GPU: embedlab's GPU paths run once each, printing what ran
where and in which precision. No GPU is available to embedlab's CI, so this is how they get checked.

    python benchmarks/gpu_smoke.py                   # all-MiniLM-L6-v2 on the packaged Lee data
    python benchmarks/gpu_smoke.py --steps 50
    python benchmarks/gpu_smoke.py --cpu             # the same checks on the CPU (the script's own test)

1. encode: the fast and the reference backend on cuda (``encode.device=cuda``), each compared with the
   reference backend on the CPU (the lowest cosine between a text's two embeddings);
2. FAISS: an exact inner-product index built and searched on the GPU when faiss has GPU support
   (``faiss-gpu``, README: the gpu extra), else on the CPU, saying so; recall@10 against numpy;
3. training: ``--steps`` steps of the siamese module through embedlab's runner (``trainer=gpu``,
   bf16-mixed, 16-mixed on a GPU without bf16), then its evaluation; prints results.json's meta.device.

Exit codes: 0 all ran; 2 no CUDA GPU is visible to torch (nothing ran); 1 a check failed (traceback).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from embedlab.config import compose_specs
from embedlab.data.sts import load_sts
from embedlab.encode.encoder import Encoder
from embedlab.tasks.model import build_model


def encode_check(texts: list[str], device: str) -> np.ndarray:
    """Fast and reference encodes on ``device`` against the CPU reference; returns the fast embeddings."""
    specs = compose_specs(["model=minilm", "data=lee", f"encode.device={device}", "embedding_cache=false"])
    model, _ = build_model(specs)  # on cuda:<LOCAL_RANK> (embedlab.tasks.model.run_device)
    cpu_model = copy.deepcopy(model).to("cpu")
    settings = {b: compose_specs([f"encode={b}"]).encode.settings for b in ("fast", "reference")}
    baseline, _ = Encoder(cpu_model, settings["reference"]).encode(texts)
    out = np.zeros(0)
    for backend, s in settings.items():
        encoder = Encoder(model, s)
        start = time.perf_counter()
        emb, _ = encoder.encode(texts)
        seconds, d = time.perf_counter() - start, encoder.describe()
        cos = float(np.min(np.sum(emb * baseline, axis=1)))  # both L2-normalised
        print(
            f"encode {backend:9s}: {len(texts)} texts on {d['device']} ({d['name']}) in {d['precision']}, "
            f"{seconds:.2f} s; lowest cosine to the CPU reference {cos:.5f}"
        )
        out = emb if backend == "fast" else out
    return out


def index_check(docs: np.ndarray, k: int = 10) -> None:
    """embedlab's own path: build a flat index, move it as ``index.device=auto`` would, search it."""
    from embedlab.eval.index import build_index, index_spec, search
    from embedlab.eval.index_store import to_device

    queries = docs[: min(200, len(docs))]
    start = time.perf_counter()
    built = build_index(index_spec("flat"), docs)
    placed = to_device(built, "auto")
    _, ids = search(built, queries, k)
    seconds = time.perf_counter() - start
    where = "GPU" if placed["device"] == "cuda" else f"CPU ({placed.get('fallback', 'asked for')})"
    exact = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, exact, strict=True)])
    print(
        f"faiss flat : {len(docs)} vectors, {len(queries)} queries, build+search {seconds:.3f} s on {where}; "
        f"recall@{k} vs numpy {recall:.4f}"
    )


def train_check(steps: int, device: str) -> None:
    import torch

    from embedlab.tasks.runner import run

    gpu = device == "cuda"
    precision = "16-mixed" if gpu and not torch.cuda.is_bf16_supported() else "bf16-mixed"
    with tempfile.TemporaryDirectory() as out:
        overrides = [
            "model=minilm",
            "data=lee",
            f"trainer={'gpu' if gpu else 'cpu'}",
            f"trainer.precision={precision}",
        ]
        overrides += [f"+trainer.max_steps={steps}", "callbacks=none", "logger=none", "save_model=false"]
        specs = compose_specs([*overrides, "embedding_cache=false"], config_name="train", output_dir=out)
        start = time.perf_counter()
        metrics, _ = run(specs)
        meta = json.loads((Path(out) / "results.json").read_text())["meta"]
    train, evaluate = meta["device"]["train"], meta["device"]["evaluate"]
    print(
        f"train      : {meta['train']['steps']} siamese steps on {train['device']} ({train['name']}), "
        f"{train['accelerator']} x{train['devices']}, precision {train['precision']}"
    )
    print(
        f"evaluate   : on {evaluate['device']} ({evaluate['backend']}, {evaluate['precision']}); "
        f"test/lee/spearman_cosine {metrics['test/lee/spearman_cosine']:.4f}; "
        f"{time.perf_counter() - start:.1f} s in all"
    )
    print("meta.device:", json.dumps(meta["device"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="siamese training steps (default 20)")
    parser.add_argument("--cpu", action="store_true", help="run the same checks on the CPU")
    args = parser.parse_args(argv)
    import torch

    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_smoke: no CUDA GPU is visible to torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda or 'none: a CPU-only build'}), so nothing ran. Run this on a GPU machine "
            "with a CUDA build of torch (README: Bring your own torch); --cpu runs the same checks on the "
            "CPU.",
            file=sys.stderr,
        )
        return 2
    specs = compose_specs(["data=lee"])
    split = load_sts(specs.data, splits=("train",)).splits["train"]
    texts = list(dict.fromkeys(split.sentence1 + split.sentence2))
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), {torch.cuda.device_count()} GPU(s)")
    docs = encode_check(texts, device)
    index_check(np.ascontiguousarray(docs, dtype=np.float32))
    train_check(args.steps, device)
    print("gpu_smoke: every check ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
