"""Index speed at equal recall: every FAISS index in ``embedlab.eval.index`` against numpy
brute force (the named peer: ``embedlab.eval.arrays.topk_dot``, a matrix product and an
argpartition per block of queries), on ONE thread, at several corpus sizes.

    python benchmarks/index.py                                  # 10k and 100k vectors
    python benchmarks/index.py --sizes 10000 100000 1000000     # + 1M (1.5 GB of float32)
    python benchmarks/index.py --sizes 10000 --kinds hnsw ivf_flat --json out.json

For each index the script builds it once (build time, memory = serialized index plus any
float vectors kept for rescoring), then sweeps its search knob (HNSW efSearch, IVF nprobe,
binary rescore multiplier; exact and sq8 have none) from cheap to expensive, measuring
recall@10 against numpy's exact top-10 and queries per second for all queries in one
search call. It reports the first setting that reaches recall@10 >= 0.95 and >= 0.99, the
qps there, the ratio to numpy brute force measured in the same run (before and after the
indexes; the faster of the two, so drift cannot flatter the indexes), and the same two
numbers with one query per call (serving one request at a time). Times are CPU seconds of
the one thread by default (``--clock``): steady when other jobs share the machine, and equal
to wall seconds on an idle core. Each rate is the median of at least 3 calls.

Vectors: the 5,183 SciFact abstracts and 1,109 claims (test + train queries) embedded by
all-MiniLM-L6-v2 through embedlab's embedding cache (encoded once if missing). Sizes above
5,183 keep the real abstracts and add perturbed copies of them: source + s * g, with g drawn
from the corpus covariance (so the noise stays in the subspace the embeddings occupy) and
s set so a copy's median cosine to its source equals the real corpus' median
nearest-neighbour cosine, then L2-normalised. Queries are always the real claims.

An HNSW build expected to take longer than ``--max-build-s`` (extrapolated from the previous
size, or from a pilot build on 20k vectors) is skipped with the reason printed; the other
indexes train on capped samples and always build. IVF-PQ stores only codes and has no
float re-ranking here, so its recall@10 plateaus below 0.95 (the table shows where). The last
line holds the qps ratios vs numpy brute force at recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from embedlab.eval.arrays import topk_dot
from embedlab.eval.index import (
    INDEX_KINDS,
    BuiltIndex,
    IndexSpec,
    build_index,
    index_bytes,
    index_spec,
    recall_vs_exact,
    search,
)

K = 10
TARGETS = (0.95, 0.99)
SCORE_BLOCK_FLOATS = 1 << 26  # numpy peer: at most 256 MB of (queries x docs) scores at a time
PILOT_DOCS = 20_000
# HNSW's build is the long one and grows a little faster than n (deeper graph, longer
# searches per insert): x1.25 per decade on top of linear. The others' k-means / PQ
# training runs on a capped sample (256 points per centroid), so only HNSW is extrapolated.
HNSW_GROWTH_PER_DECADE = 1.25

# Knob values, cheap to expensive; sweeps stop at the first setting with recall >= 0.99.
EF_SEARCH = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
NPROBE = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
RESCORE = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# IVF-PQ re-ranking depths (k * this many PQ candidates) the benchmark adds for every --pq-m
PQ_RESCORE = (8, 32, 128)

# Timing clock. Everything runs on one thread, so the CPU time of this process is what the
# search costs that thread: on an idle core, CPU time = wall time. On a machine other jobs
# share, wall time also counts the slices the scheduler gives them (seen here: the same
# numpy call 4 qps at one minute and 11 at the next), CPU time barely moves. --clock wall
# times wall seconds instead.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock: Callable[[], float] = time.process_time


def limit_threads() -> None:
    """One thread for faiss (OpenMP), numpy's BLAS and torch, whatever the environment says."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    threadpool_limits(limits=1)


def other_cores() -> Callable[[], float]:
    """Stopwatch of the cores *other* processes keep busy (from /proc/stat; nan if absent)."""

    def total_busy() -> float:
        try:
            with open("/proc/stat") as fh:
                f = [float(x) for x in fh.readline().split()[1:]]
        except OSError:
            return float("nan")
        return (sum(f) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")

    busy0, own0, wall0 = total_busy(), sum(os.times()[:2]), time.perf_counter()
    return lambda: max(
        0.0, (total_busy() - busy0 - sum(os.times()[:2]) + own0) / max(time.perf_counter() - wall0, 1e-9)
    )


# --- vectors ---------------------------------------------------------------------------


def scifact_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(5183, 384) abstracts and (1109, 384) claims, L2-normalised, via the embedding cache."""
    from embedlab.data.retrieval import load_scifact
    from embedlab.encode.cache import EmbeddingCache
    from embedlab.encode.encoder import Encoder
    from embedlab.models.encoder import EncoderSpec, build_encoder

    model, _ = build_encoder(EncoderSpec(name="minilm", packaged="minilm"))
    root = Path(os.environ.get("EMBEDLAB_CACHE", Path.home() / ".cache" / "embedlab"))
    cache = EmbeddingCache(root / "embeddings")  # where evaluate.py keeps them (configs/paths)
    encoder = Encoder(model, cache=cache)  # the reference path, float32
    test, train = load_scifact(split="test"), load_scifact(split="train")
    docs, _ = encoder.encode_cached(list(test.corpus.values()), what="documents")
    queries = [encoder.encode_cached(list(s.queries.values()), what="queries")[0] for s in (test, train)]
    print(
        f"SciFact embeddings: {cache.stats.n_from_cache} texts from the cache, {cache.stats.n_encoded} encoded"
    )
    return unit(docs), unit(np.concatenate(queries))


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))


@dataclass(frozen=True)
class Perturber:
    """Makes copies of real vectors: unit(source + scale * g), g ~ N(0, corpus covariance)."""

    real: np.ndarray  # (R, d) unit vectors
    factor: np.ndarray  # (d, d): g = z @ factor.T for z ~ N(0, I)
    scale: float
    target_cos: float  # real median nearest-neighbour cosine the copies are calibrated to

    @classmethod
    def calibrate(cls, real: np.ndarray, seed: int) -> Perturber:
        sims = real @ real.T  # (R, R): 5k x 5k, 100 MB
        np.fill_diagonal(sims, -np.inf)
        target = float(np.median(sims.max(axis=1)))
        del sims
        w, v = np.linalg.eigh(np.cov(real, rowvar=False))
        factor = (v * np.sqrt(np.clip(w, 0.0, None))).astype(np.float32)
        rng = np.random.default_rng(seed)
        src = real[rng.integers(0, len(real), 2000)]
        g = rng.standard_normal((len(src), real.shape[1]), dtype=np.float32) @ factor.T
        lo, hi = 0.0, 20.0
        for _ in range(40):  # the median cosine to the source falls as the scale grows
            mid = (lo + hi) / 2
            cos = float(np.median(np.sum(unit(src + mid * g) * src, axis=1)))
            lo, hi = (mid, hi) if cos > target else (lo, mid)
        return cls(real, factor, (lo + hi) / 2, target)

    def corpus(self, n: int, seed: int) -> np.ndarray:
        """(n, d): the real vectors first, then copies of them in turn (row i copies i mod R)."""
        r, d = self.real.shape
        out = np.empty((n, d), dtype=np.float32)
        out[: min(n, r)] = self.real[:n]
        rng = np.random.default_rng(seed)
        for a in range(r, n, 65536):
            b = min(a + 65536, n)
            g = rng.standard_normal((b - a, d), dtype=np.float32) @ self.factor.T
            out[a:b] = unit(self.real[np.arange(a, b) % r] + self.scale * g)
        return out


# --- measurement -----------------------------------------------------------------------


def median_qps(run: Callable[[np.ndarray], Any], queries: np.ndarray, min_seconds: float) -> float:
    """Queries per second of ``run(queries)`` (one call for all): one warm-up call on a few
    queries, then calls for at least ``min_seconds``, and at least 3 of them unless that
    takes over 10 s (slow settings at 1M vectors); the median call counts."""
    run(queries[:32])
    times: list[float] = []
    while sum(times) < min_seconds or (len(times) < 3 and sum(times) < 10.0):
        t = clock()
        run(queries)
        times.append(clock() - t)
    return len(queries) / float(np.median(times))


def single_qps(run: Callable[[np.ndarray], Any], queries: np.ndarray, min_seconds: float) -> float:
    """Queries per second answering one query per call (a server handling one request):
    passes over ``queries``, counted as :func:`median_qps` counts calls."""
    return median_qps(lambda q: [run(q[i : i + 1]) for i in range(len(q))], queries, min_seconds)


def numpy_search(docs: np.ndarray) -> Callable[[np.ndarray], Any]:
    chunk = int(max(1, min(1024, SCORE_BLOCK_FLOATS // len(docs))))
    return lambda q: topk_dot(q, docs, K, chunk_size=chunk)


@dataclass
class Point:
    knob: int | None
    recall: float
    qps: float
    single_qps: float | None = None


@dataclass
class Row:
    label: str
    kind: str
    knob_name: str
    build_s: float = float("nan")
    bytes: int = 0
    points: list[Point] = field(default_factory=list)
    stop: str = ""
    skipped: str = ""

    def first(self, target: float) -> Point | None:
        return next((p for p in self.points if p.recall >= target), None)


def knob_setter(built: BuiltIndex) -> tuple[str, tuple[int | None, ...], Callable[[int | None], BuiltIndex]]:
    """The search knob of an index: its name, the values to sweep and a setter."""
    import faiss

    spec = built.spec
    if spec.kind == "hnsw":

        def set_ef(v: int | None) -> BuiltIndex:
            built.index.hnsw.efSearch = int(v)  # type: ignore[arg-type]
            return built

        return "efSearch", tuple(v for v in EF_SEARCH if v >= K), set_ef
    if spec.kind in ("ivf_flat", "ivf_pq"):
        nlist = built.params["nlist"]

        def set_nprobe(v: int | None) -> BuiltIndex:
            faiss.extract_index_ivf(built.index).nprobe = int(v)  # type: ignore[arg-type]
            return built

        values = tuple(v for v in NPROBE if v < nlist) + (nlist,)
        return "nprobe", values, set_nprobe
    if spec.kind == "binary":
        values = tuple(v for v in RESCORE if v * K < built.n_docs) or (1,)
        return "rescore", values, lambda v: replace(built, spec=index_spec("binary", rescore_multiplier=v))
    return "-", (None,), lambda v: built


def sweep(
    row: Row, built: BuiltIndex, queries: np.ndarray, exact_ids: np.ndarray, args: argparse.Namespace
) -> None:
    """Walk the knob from cheap to expensive until recall >= the last target, a plateau, or
    a search slower than --max-search-s."""
    row.knob_name, values, setter = knob_setter(built)
    for n_done, v in enumerate(values, start=1):
        current = setter(v)
        t = clock()
        _, ids = search(current, queries, K)
        first_call = clock() - t
        recall = recall_vs_exact(ids, exact_ids)
        qps = median_qps(lambda q, c=current: search(c, q, K), queries, args.min_seconds)
        row.points.append(Point(v, recall, qps))
        if recall >= TARGETS[-1]:
            break
        if n_done == len(values):
            row.stop = "no knob" if len(values) == 1 else "knob range ends"
            break
        if len(row.points) >= 4 and recall - row.points[-4].recall < 0.002:
            row.stop = "plateau"
            break
        if first_call > args.max_search_s:
            row.stop = f"search {first_call:.0f} s > --max-search-s"
            break
    for target in TARGETS:  # one query per call, at the settings that are reported
        p = row.first(target)
        if p is not None and p.single_qps is None:
            current = setter(p.knob)
            p.single_qps = single_qps(
                lambda q, c=current: search(c, q, K), queries[: args.single_queries], args.min_seconds
            )


def specs(kinds: list[str], pq_ms: list[int]) -> list[tuple[str, IndexSpec]]:
    out: list[tuple[str, IndexSpec]] = []
    for kind in kinds:
        if kind == "ivf_pq":
            out += [(f"ivf_pq m={m}", index_spec("ivf_pq", m=m)) for m in pq_ms]
            out += [(f"ivf_pq m={m} +rescore{r}", index_spec("ivf_pq", m=m, rescore_multiplier=r)) for m in pq_ms
                    for r in PQ_RESCORE]  # fmt: skip
        else:
            out.append(("exact (flat)" if kind == "flat" else kind, index_spec(kind)))
    return out


def timed_build(spec: IndexSpec, docs: np.ndarray) -> tuple[BuiltIndex, float]:
    t = clock()
    built = build_index(spec, docs)
    return built, clock() - t


@dataclass
class SizeResult:
    n_docs: int
    n_real: int
    n_queries: int
    numpy_qps: float
    numpy_qps_runs: list[float]
    numpy_single_qps: float
    other_cores: float
    rows: list[Row]


def run_size(
    n: int,
    perturber: Perturber,
    queries: np.ndarray,
    args: argparse.Namespace,
    past_builds: dict[str, tuple[int, float]],
) -> SizeResult:
    docs = perturber.corpus(n, args.seed)
    load = other_cores()
    peer = numpy_search(docs)
    _, exact_ids = peer(queries)
    numpy_runs = [median_qps(peer, queries, args.min_seconds)]
    numpy_single = single_qps(peer, queries[: args.single_queries], args.min_seconds)
    rows: list[Row] = []
    for label, spec in specs(args.kinds, args.pq_m):
        row = Row(label, spec.kind, "-")
        rows.append(row)
        prev = past_builds.get(label) if spec.kind == "hnsw" else None
        if prev is None and n > PILOT_DOCS and spec.kind == "hnsw":
            _, pilot_s = timed_build(spec, docs[:PILOT_DOCS])
            prev = (PILOT_DOCS, pilot_s)
        if prev is not None:
            estimate = prev[1] * (n / prev[0]) * HNSW_GROWTH_PER_DECADE ** np.log10(n / prev[0])
            if estimate > args.max_build_s:
                row.skipped = (
                    f"skipped: build estimated at {estimate:.0f} s from {prev[1]:.1f} s at n={prev[0]:,} "
                    f"(> --max-build-s {args.max_build_s:.0f})"
                )
                print(f"  {label}: {row.skipped}", flush=True)
                continue
        built, row.build_s = timed_build(spec, docs)
        past_builds[label] = (n, row.build_s)
        row.bytes = index_bytes(built) + built.rescore_bytes
        sweep(row, built, queries, exact_ids, args)
        del built
        p = row.points[-1]
        print(
            f"  {label}: built in {row.build_s:.1f} s, {row.bytes / 2**20:.1f} MB; "
            f"{len(row.points)} settings, last {row.knob_name}={p.knob} recall {p.recall:.4f} {p.qps:,.0f} qps",
            flush=True,
        )
    numpy_runs.append(median_qps(peer, queries, args.min_seconds))
    return SizeResult(n, min(n, len(perturber.real)), len(queries), max(numpy_runs), numpy_runs,
                      numpy_single, load(), rows)  # fmt: skip


# --- report ----------------------------------------------------------------------------


def fmt_point(p: Point | None, res: SizeResult) -> list[str]:
    if p is None:
        return ["-", "-", "-", "-", "-"]
    single = p.single_qps or float("nan")
    return [
        "-" if p.knob is None else str(p.knob),
        f"{p.qps:,.0f}",
        f"{p.qps / res.numpy_qps:.2f}x",
        f"{single:,.0f}",
        f"{single / res.numpy_single_qps:.1f}x",
    ]


def table(res: SizeResult) -> str:
    head = ["index", "build s", "MB", "B/vec", "knob"]
    for t in TARGETS:
        head += [f"@{t} at", "qps", "x numpy", "1-q qps", "x numpy"]
    head += ["max recall"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        f"| numpy brute force | - | {res.n_docs * 384 * 4 / 2**20:.1f} | 1536 | - | - | "
        f"{res.numpy_qps:,.0f} | 1.00x | {res.numpy_single_qps:,.0f} | 1.0x | - | {res.numpy_qps:,.0f} | 1.00x | "
        f"{res.numpy_single_qps:,.0f} | 1.0x | 1.0000 |",
    ]
    for row in res.rows:
        if row.skipped:
            lines.append(f"| {row.label} | {row.skipped} |" + " |" * (len(head) - 2))
            continue
        cells = [row.label, f"{row.build_s:.2f}", f"{row.bytes / 2**20:.1f}", f"{row.bytes / res.n_docs:.0f}"]
        cells.append(row.knob_name)
        for t in TARGETS:
            cells += fmt_point(row.first(t), res)
        best = max(row.points, key=lambda p: p.recall)
        note = f" ({row.knob_name}={best.knob}, {row.stop})" if row.first(TARGETS[-1]) is None else ""
        cells.append(f"{best.recall:.5f}{note}")  # 5 places: 0.98999 must not read as 0.9900
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--kinds",
        nargs="+",
        default=["flat", "hnsw", "ivf_flat", "ivf_pq", "sq8", "binary"],
        choices=sorted(INDEX_KINDS),
    )
    parser.add_argument(
        "--pq-m", type=int, nargs="+", default=[16, 96], help="IVF-PQ sub-quantizers (16: the default)"
    )
    parser.add_argument("--max-build-s", type=float, default=900.0, help="skip builds estimated longer")
    parser.add_argument("--max-search-s", type=float, default=60.0, help="stop a sweep past this")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="timing window per setting")
    parser.add_argument("--single-queries", type=int, default=100, help="queries for 1-query-per-call qps")
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="cpu",
        help="time CPU seconds of the one thread (default: steady on a shared machine) or wall seconds",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if any(n < 1000 for n in args.sizes):
        parser.error("--sizes: each size must be >= 1000 vectors")

    global clock
    clock = CLOCKS[args.clock]
    limit_threads()
    real, queries = scifact_embeddings()
    perturber = Perturber.calibrate(real, args.seed)
    print(
        f"{len(real):,} SciFact abstracts, {len(queries):,} claims as queries, dim {real.shape[1]}, k={K}, "
        f"1 thread. Copies beyond {len(real):,}: scale {perturber.scale:.3f} x N(0, corpus covariance), "
        f"median cosine to source {perturber.target_cos:.3f} (= real median nearest-neighbour cosine)"
    )
    results: list[SizeResult] = []
    past_builds: dict[str, tuple[int, float]] = {}
    for n in sorted(args.sizes):
        print(f"n = {n:,}", flush=True)
        res = run_size(n, perturber, queries, args, past_builds)
        results.append(res)
        print(
            f"\nn = {n:,} docs ({res.n_real:,} real + {n - res.n_real:,} perturbed copies), "
            f"{res.n_queries:,} queries, recall@{K} vs numpy exact top-{K}, 1 thread, timed in "
            f"{args.clock} seconds; numpy brute force "
            f"{' / '.join(f'{q:,.0f}' for q in res.numpy_qps_runs)} qps (before / after; the best counts); "
            f"other processes kept {res.other_cores:.2f} cores busy"
        )
        print(table(res) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    parts = []
    for res in results:
        ratios = [
            f"{row.label} {p.qps / res.numpy_qps:.2f}x"
            if (p := row.first(TARGETS[0])) is not None
            else f"{row.label} {'skipped' if row.skipped else 'n/a'}"
            for row in res.rows
        ]
        parts.append(f"{res.n_docs:,}: " + ", ".join(ratios))
    print(
        f"qps vs numpy brute force at recall@{K} >= {TARGETS[0]} (all queries per call, 1 thread): "
        + "; ".join(parts)
    )


if __name__ == "__main__":
    main()
