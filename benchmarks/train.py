"""Training throughput: embedlab's ``SiameseModule`` (Lightning) against sentence-transformers'
``SentenceTransformerTrainer`` (the named peer) on the same model (all-MiniLM-L6-v2), data
(a seeded STS-B train subset), loss (cosine similarity, MSE), batch, learning-rate schedule
and threads; interleaved runs, each from a freshly loaded model, median pairs per second
of each and the median of the per-round ratios.

    python benchmarks/train.py                   # 800 pairs, 1 epoch, 3 rounds (~3 min)
    python benchmarks/train.py --pairs 64        # a quick check that both paths run
    python benchmarks/train.py --full            # all 5,749 pairs, 4 epochs, + STS-B test
                                                 # Spearman of both (long: 15+ min each)
    python benchmarks/train.py --full --pairs 32 # the same on 32 pairs: a check that it runs

Goal (issue "Performance"): at least the peer's pairs per second, with a final STS-B test
Spearman within 0.3 points of it. Only ``fit`` is timed (no model loading, no evaluation).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from embedlab.data.pair_datamodule import PairDataModule
from embedlab.data.retrieval import resolve_data_dir
from embedlab.data.sts import PairSplit, STSSpec, load_sts
from embedlab.models.encoder import EncoderSpec, build_encoder

PEER = "sentence-transformers SentenceTransformerTrainer"
OURS = "embedlab SiameseModule (Lightning)"
LR, WEIGHT_DECAY, WARMUP = 2e-5, 0.01, 0.1  # the SBERT STS-B recipe (configs/objective/cosine.yaml)

Fit = Callable[[], tuple[float, object]]  # -> (seconds of fit, trained SentenceTransformer)


def stsb_spec(pairs: int | None) -> STSSpec:
    return STSSpec(
        name="stsb",
        format="stsb_tsv",
        score_range=(0.0, 5.0),
        root=str(resolve_data_dir() / "stsb"),
        files={"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"},
        max_pairs_per_split=pairs,  # a seeded subsample of each split
    )


def fresh_model():
    model, _ = build_encoder(EncoderSpec(name="minilm", packaged="minilm"))
    return model


def fit_ours(
    spec: STSSpec,
    batch_size: int,
    epochs: int,
    seed: int,
    fused_adamw: bool = False,
    precision: str = "32-true",
) -> tuple[float, object]:
    """``fused_adamw`` / ``precision``: levers to try before changing SiameseModule or the
    trainer config (--levers), not what embedlab runs by default."""
    import functools

    import lightning as L

    from embedlab.modules.siamese import SiameseModule

    class FusedAdamW(SiameseModule):
        def configure_optimizers(self):  # type: ignore[override]
            real = torch.optim.AdamW
            torch.optim.AdamW = functools.partial(real, fused=True)  # type: ignore[misc]
            try:
                return super().configure_optimizers()
            finally:
                torch.optim.AdamW = real  # type: ignore[misc]

    L.seed_everything(seed, workers=True, verbose=False)
    model = fresh_model()
    data = PairDataModule(spec, batch_size=batch_size, seed=seed)
    data.setup()
    model.train()  # built in eval mode; Lightning keeps submodule modes (as run.train does)
    module_class = FusedAdamW if fused_adamw else SiameseModule
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
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=data.train_dataloader())
        seconds = time.perf_counter() - start
    return seconds, model


def fit_peer(train: PairSplit, batch_size: int, epochs: int, seed: int) -> tuple[float, object]:
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
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return seconds, model


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
    parser.add_argument("--levers", action="store_true", help="also: fused AdamW; fused AdamW + bf16-mixed")
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

    spec = stsb_spec(args.pairs)
    data = load_sts(spec, ["train", "test"])
    train = data.splits["train"]
    print(
        f"STS-B train: {len(train)} pairs, batch {args.batch_size}, {args.epochs} epoch(s), "
        f"{args.threads} threads, {args.repeats} interleaved round(s)"
    )
    runs: dict[str, Fit] = {
        PEER: lambda: fit_peer(train, args.batch_size, args.epochs, args.seed),
        OURS: lambda: fit_ours(spec, args.batch_size, args.epochs, args.seed),
    }
    if args.levers:
        runs[f"{OURS}, fused AdamW"] = lambda: fit_ours(spec, args.batch_size, args.epochs, args.seed, True)
        runs[f"{OURS}, fused AdamW, bf16-mixed"] = lambda: fit_ours(
            spec, args.batch_size, args.epochs, args.seed, True, "bf16-mixed"
        )
    rates: dict[str, list[float]] = {name: [] for name in runs}
    models: dict[str, object] = {}
    names = list(runs)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # ABBA: drift hits both alike
            seconds, models[name] = runs[name]()
            rates[name].append(len(train) * args.epochs / seconds)
            print(f"  round {r + 1}: {name}: {seconds:.1f} s ({rates[name][-1]:.1f} pairs/s)")
    for name, r in rates.items():
        ratio = statistics.median(a / b for a, b in zip(r, rates[PEER], strict=True))
        print(
            f"{name:62s} median {statistics.median(r):6.1f} pairs/s (min {min(r):.1f}, max {max(r):.1f}) "
            f"{ratio:5.2f}x"
        )
    ratio = statistics.median(a / b for a, b in zip(rates[OURS], rates[PEER], strict=True))
    line = f"train speedup vs sentence-transformers: {ratio:.2f}x"
    if args.full:
        from embedlab.eval.sts import evaluate_sts

        test = load_sts(stsb_spec(None), ["test"]).splits["test"]
        score = {n: 100 * evaluate_sts(m, test).metrics["spearman_cosine"] for n, m in models.items()}
        for name, value in score.items():
            print(f"STS-B test Spearman, {name}: {value:.2f}")
        line += f" (STS-B test Spearman: embedlab {score[OURS]:.2f}, sentence-transformers {score[PEER]:.2f})"
    print(line)


if __name__ == "__main__":
    main()
