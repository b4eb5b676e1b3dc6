"""Peak memory of encoding many texts through embedlab's cache path (``encode_cached``).

``encode_cached`` encodes in chunks of ``CHUNK_SIZE`` texts, so apart from the inputs and
the (N, D) float32 result, memory should not grow with N. This script checks that: it
encodes 20k, 50k and 200k synthetic sentences (real STS-B sentences recombined: the first
half of one sentence's words, the second half of another's) into an empty cache, each size
in a fresh process, and reports

- peak RSS (``ru_maxrss``: the kernel's exact high-water mark for the process),
- peak RSS minus the embeddings' own bytes (N x D x 4): the *overhead*,
- the part of the overhead that appears during encoding (peak minus RSS just before it,
  minus the embeddings; a 5 ms sampling thread marks the start),
- and the ratio of the 200k overhead to the 20k overhead: the peer is the 20k run of the
  same series, so a ratio near 1 means bounded memory and ~10 means memory per text.

    python benchmarks/memory.py                                # tiny BERT, max_seq_length 32 (~3 min)
    python benchmarks/memory.py --model minilm --sizes 20000 50000   # the real model (slow on CPU)

The tiny model (2 layers, 32 dims, built from config; tests/conftest.py) keeps the run
short on a shared CPU; its transformer activations are smaller than MiniLM's, which only
raises the share of the overhead that the cache path itself is responsible for.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MB = 1 << 20


def synthetic_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences from real STS-B vocabulary and word order, recombined."""
    from embedlab.data.retrieval import resolve_data_dir
    from embedlab.data.sts import load_sts, stsb_spec

    root = resolve_data_dir() / "stsb"
    data = load_sts(stsb_spec(root))
    pool = sorted({t for split in data.splits.values() for t in (*split.sentence1, *split.sentence2)})
    words = [s.split() for s in pool]
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        a, b = rng.choice(words), rng.choice(words)
        out.add(" ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2 :]))
    return sorted(out)[:n] if len(out) > n else list(out)


def current_rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """The highest RSS seen every ``interval`` seconds while running."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss())


def child(n: int, model_name: str, max_seq_length: int, threads: int, batch_size: int) -> dict:
    import torch

    from embedlab.encode.cache import CHUNK_SIZE, EmbeddingCache
    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.models.encoder import EncoderSpec, build_encoder

    torch.set_num_threads(threads)
    if model_name == "tiny":
        spec = EncoderSpec(
            name="tiny_bert", name_or_path=None, tiny_architecture="bert", max_seq_length=max_seq_length
        )
    else:
        spec = EncoderSpec(name="minilm", name_or_path="sentence-transformers/all-MiniLM-L6-v2",
                           packaged="minilm", max_seq_length=max_seq_length)  # fmt: skip
    model, _ = build_encoder(spec)
    texts = synthetic_sentences(n)
    text_bytes = sum(sys.getsizeof(t) for t in texts) + sys.getsizeof(texts)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = Encoder(model, EncodeSettings(batch_size=batch_size), EmbeddingCache(Path(tmp)))
        encoder.key = "memory-bench"  # a fixed key: this measures encoding, not hashing the weights
        before = current_rss()
        start = time.perf_counter()
        with PeakSampler() as sampler:
            emb, stats = encoder.encode_cached(texts)
        seconds = time.perf_counter() - start
        cached = sum(p.stat().st_size for p in Path(tmp).rglob("*.npy"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {
        "n": n, "dim": int(emb.shape[1]), "emb_bytes": int(emb.nbytes), "text_bytes": text_bytes,
        "rss_before_encode": before, "peak_rss": peak, "sampled_peak_during_encode": sampler.peak,
        "seconds": seconds, "chunk_size": CHUNK_SIZE, "cache_file_bytes": cached,
        "n_truncated": stats.n_truncated if stats else None,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 50_000, 200_000])
    ap.add_argument("--model", choices=["tiny", "minilm"], default="tiny")
    ap.add_argument("--max-seq-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.model, args.max_seq_length, args.threads, args.batch_size)))
        return

    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--model", args.model,
               "--max-seq-length", str(args.max_seq_length), "--threads", str(args.threads),
               "--batch-size", str(args.batch_size)]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0:
            sys.exit(f"child for {n} texts failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"model={args.model} max_seq_length={args.max_seq_length} threads={args.threads} "
          f"batch={args.batch_size} chunk={rows[0]['chunk_size']} dim={rows[0]['dim']}")  # fmt: skip
    head = (
        "texts",
        "emb MB",
        "texts MB",
        "RSS before MB",
        "peak RSS MB",
        "peak-emb MB",
        "during encode MB",
        "s",
    )
    print(" | ".join(head))
    for r in rows:
        overhead = r["peak_rss"] - r["emb_bytes"]
        during = r["sampled_peak_during_encode"] - r["rss_before_encode"] - r["emb_bytes"]
        r["overhead"], r["during"] = overhead, during
        print(f"{r['n']:>7} | {r['emb_bytes'] / MB:7.1f} | {r['text_bytes'] / MB:7.1f} | "
              f"{r['rss_before_encode'] / MB:8.1f} | {r['peak_rss'] / MB:8.1f} | {overhead / MB:8.1f} | "
              f"{during / MB:8.1f} | {r['seconds']:6.1f}")  # fmt: skip
    base, top = rows[0], rows[-1]
    print(f"overhead (peak RSS - embeddings) {top['n']}/{base['n']}: {top['overhead'] / base['overhead']:.2f}x "
          f"(texts x{top['n'] / base['n']:.0f}); during-encode overhead {top['during'] / MB:.1f} MB vs "
          f"{base['during'] / MB:.1f} MB")  # fmt: skip
    # What still grows with N: extra bytes held during encoding per byte of embeddings
    # (copies of the result), and the input texts themselves.
    per_byte = (top["during"] - base["during"]) / max(top["emb_bytes"] - base["emb_bytes"], 1)
    print(f"growth of the during-encode overhead: {per_byte:.2f} bytes per embedding byte "
          f"(0 = bounded by the chunk size; {per_byte:.1f} x N x D x 4 bytes at any model width)")  # fmt: skip


if __name__ == "__main__":
    main()
