"""Training throughput: embedlab's ``SiameseModule`` (Lightning), in float32 and in bf16 mixed precision
(``trainer.precision=bf16-mixed``), against sentence-transformers' ``SentenceTransformerTrainer`` in
float32 (the named peer) on the same model (all-MiniLM-L6-v2), data
(a seeded STS-B train subset), loss (cosine similarity, MSE), batch, learning-rate schedule
and threads; interleaved runs, each from a freshly loaded model, median pairs per second
of each and the median of the per-round ratios.

    python benchmarks/train.py                   # 800 pairs, 1 epoch, 3 rounds (~4 min)
    python benchmarks/train.py --pairs 64        # a quick check that both paths run
    python benchmarks/train.py --full            # all 5,749 pairs, 4 epochs, + STS-B test
                                                 # Spearman of both (long: 15+ min each)
    python benchmarks/train.py --full --pairs 32 # the same on 32 pairs: a check that it runs
    python benchmarks/train.py --levers loop padded --threads 1   # + variants (NOTES.md)

Goals: issue "Performance", float32: at least the peer's pairs per second, with a final STS-B test
Spearman within 0.3 points of it; issue #16, bf16-mixed: >= 2x the peer, the full recipe's test
Spearman within 0.003 of embedlab's float32 run. Only ``fit`` is timed (no model loading, no evaluation).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from embedlab.data.datamodules import PairDataModule
from embedlab.data.retrieval import resolve_data_dir
from embedlab.data.sts import PairSplit, STSSpec, load_sts, stsb_spec
from embedlab.models.encoder import EncoderSpec, build_encoder

PEER = "sentence-transformers SentenceTransformerTrainer"
OURS = "embedlab SiameseModule (Lightning)"
OURS_BF16 = f"{OURS}, bf16-mixed"
LR, WEIGHT_DECAY, WARMUP = 2e-5, 0.01, 0.1  # the SBERT STS-B recipe (configs/objective/cosine.yaml)

# --levers: label and fit_ours arguments of each variant
LEVERS: dict[str, tuple[str, dict[str, object]]] = {
    "loop": ("for-loop AdamW", {"adamw": {"foreach": False}}),
    "foreach": ("foreach AdamW", {"adamw": {"foreach": True}}),
    "padded": ("padded batches (no length groups)", {"padded": True}),
    "before": ("padded, for-loop AdamW (before issue #6)", {"padded": True, "adamw": {"foreach": False}}),
    "bf16-padded": ("bf16-mixed, padded batches", {"precision": "bf16-mixed", "padded": True}),
}

# -> (wall seconds of fit, CPU seconds of this process during fit, trained SentenceTransformer)
Fit = Callable[[], tuple[float, float, object]]


def stsb(pairs: int | None) -> STSSpec:
    return stsb_spec(resolve_data_dir() / "stsb", max_pairs=pairs)  # a seeded subsample of each split


def fresh_model():
    model, _ = build_encoder(EncoderSpec(name="minilm", packaged="minilm"))
    return model


def fit_ours(
    spec: STSSpec,
    batch_size: int,
    epochs: int,
    seed: int,
    adamw: dict[str, bool] | None = None,
    precision: str = "32-true",
    padded: bool = False,
) -> tuple[float, float, object]:
    """``adamw`` / ``precision`` / ``padded``: levers (--levers), not what embedlab runs
    by default. ``adamw`` replaces SiameseModule's AdamW implementation flags (default:
    fused), e.g. ``{"foreach": False}`` for torch's per-tensor loop (embedlab's optimizer
    before fused). ``padded``: SiameseModule's step before length groups, each side of the
    pairs in one forward pass padded to its longest text (what the peer does)."""
    import lightning as L

    from embedlab.modules.siamese import SiameseModule

    class Variant(SiameseModule):
        def configure_optimizers(self):  # type: ignore[override]
            if adamw is None:
                return super().configure_optimizers()
            real = torch.optim.AdamW

            def patched(params, **kwargs):
                kwargs.pop("fused", None)
                return real(params, **kwargs, **adamw)

            torch.optim.AdamW = patched  # type: ignore[misc,assignment]
            try:
                return super().configure_optimizers()
            finally:
                torch.optim.AdamW = real  # type: ignore[misc]

        def _groupable(self, features, mask):  # type: ignore[override]
            return not padded and super()._groupable(features, mask)

        def training_step(self, batch, batch_idx):  # type: ignore[override]
            if not padded:
                return super().training_step(batch, batch_idx)
            emb_a, emb_b = self.embed(batch["sentence1"]), self.embed(batch["sentence2"])
            loss = self.loss_fn(emb_a, emb_b, batch["label"])
            self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
            return loss

    L.seed_everything(seed, workers=True, verbose=False)
    model = fresh_model()
    data = PairDataModule(spec, batch_size=batch_size, seed=seed)
    data.setup()
    model.train()  # built in eval mode; Lightning keeps submodule modes (as run.train does)
    module_class = SiameseModule if adamw is None and not padded else Variant
    module = module_class(model, loss="cosine", lr=LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=epochs,
            precision=precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            default_root_dir=tmp,
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.fit(module, train_dataloaders=data.train_dataloader())
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu, model


def fit_peer(train: PairSplit, batch_size: int, epochs: int, seed: int) -> tuple[float, float, object]:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    model = fresh_model()
    dataset = Dataset.from_dict(
        {
            "sentence1": list(train.sentence1),
            "sentence2": list(train.sentence2),
            "score": train.normalized_scores(),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=LR,
            weight_decay=WEIGHT_DECAY,
            warmup_ratio=WARMUP,
            seed=seed,
            use_cpu=True,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=CosineSimilarityLoss(model)
        )
        start, cpu_start = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu, model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="STS-B train pairs, a seeded subsample (default 800; --full: all)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--levers",
        nargs="*",
        choices=list(LEVERS),
        default=None,
        help="also run these variants of SiameseModule (bare --levers: all): loop / foreach = AdamW "
        "without fused (the per-tensor loop was the default before), padded = each side of the "
        "pairs padded to its longest text in one forward (no length groups), before = padded and "
        "loop (SiameseModule before issue #6), bf16-padded = bf16-mixed without length groups",
    )
    parser.add_argument(
        "--full", action="store_true", help="all train pairs, 4 epochs, one round, + STS-B test"
    )
    args = parser.parse_args()
    if args.full:
        args.epochs, args.repeats = 4, 1
    elif args.pairs is None:
        args.pairs = 800
    torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "transformers", "sentence_transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)

    spec = stsb(args.pairs)
    data = load_sts(spec, ["train", "test"])
    train = data.splits["train"]
    print(
        f"STS-B train: {len(train)} pairs, batch {args.batch_size}, {args.epochs} epoch(s), "
        f"{args.threads} threads, {args.repeats} interleaved round(s)"
    )
    runs: dict[str, Fit] = {
        PEER: lambda: fit_peer(train, args.batch_size, args.epochs, args.seed),
        OURS: lambda: fit_ours(spec, args.batch_size, args.epochs, args.seed),
        OURS_BF16: lambda: fit_ours(spec, args.batch_size, args.epochs, args.seed, precision="bf16-mixed"),
    }
    if args.levers is not None:
        for lever in args.levers or list(LEVERS):
            label, kwargs = LEVERS[lever]
            runs[f"{OURS}, {label}"] = functools.partial(
                fit_ours, spec, args.batch_size, args.epochs, args.seed, **kwargs
            )
    rates: dict[str, list[float]] = {name: [] for name in runs}  # pairs per wall second
    cpu_rates: dict[str, list[float]] = {name: [] for name in runs}  # pairs per CPU second
    models: dict[str, object] = {}
    names = list(runs)
    n_pairs = len(train) * args.epochs
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # ABBA: drift hits both alike
            seconds, cpu, models[name] = runs[name]()
            rates[name].append(n_pairs / seconds)
            cpu_rates[name].append(n_pairs / cpu)
            print(
                f"  round {r + 1}: {name}: {seconds:.1f} s ({rates[name][-1]:.1f} pairs/s), "
                f"{cpu:.1f} CPU s ({cpu_rates[name][-1]:.1f} pairs per CPU s), "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )

    def ratio(values: dict[str, list[float]], name: str) -> float:
        return statistics.median(a / b for a, b in zip(values[name], values[PEER], strict=True))

    for name, r in rates.items():
        print(
            f"{name:62s} median {statistics.median(r):6.1f} pairs/s (min {min(r):.1f}, max {max(r):.1f}) "
            f"{ratio(rates, name):5.2f}x; per CPU second {statistics.median(cpu_rates[name]):6.1f} "
            f"{ratio(cpu_rates, name):5.2f}x"
        )
    # On a machine other jobs share, the wall-time ratio swings with their load from one fit
    # to the next; with --threads 1 the CPU time a fit uses barely does, so it is printed too.
    line = (
        f"train speedup vs sentence-transformers (fp32): bf16-mixed {ratio(rates, OURS_BF16):.2f}x, "
        f"fp32 {ratio(rates, OURS):.2f}x (per CPU second: {ratio(cpu_rates, OURS_BF16):.2f}x, "
        f"{ratio(cpu_rates, OURS):.2f}x)"
    )
    if args.full:
        from embedlab.encode.encoder import Encoder
        from embedlab.eval.sts import evaluate_sts

        test = load_sts(stsb(None), ["test"]).splits["test"]
        score = {
            n: 100 * evaluate_sts(Encoder(m), test).metrics["spearman_cosine"] for n, m in models.items()
        }
        for name, value in score.items():
            print(f"STS-B test Spearman, {name}: {value:.2f}")
        line += (
            f" (STS-B test Spearman: embedlab bf16-mixed {score[OURS_BF16]:.2f}, fp32 {score[OURS]:.2f}, "
            f"sentence-transformers {score[PEER]:.2f})"
        )
    print(line)


if __name__ == "__main__":
    main()
