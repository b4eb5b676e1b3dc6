"""Cosine vs dot product vs euclidean (and manhattan), on normalised and raw embeddings.

    EMBEDLAB_DATA=../shared/data .venv/bin/python experiments/cosine_similarity/study.py --models minilm mpnet

For each model: the four similarity functions on a few hand-picked sentence pairs, and
the STS-B test Spearman of each function, with the mean-pooled embeddings as they come
out of the transformer (raw) and divided by their norm (normalised, what the packaged
models serve). Writes results.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PAIRS = [  # (a, b, why it is here)
    ("A man is playing a guitar.", "A man is playing guitar.", "near paraphrase"),
    ("A man is playing a guitar.", "Someone plays a musical instrument.", "paraphrase, other words"),
    ("The movie was wonderful.", "The movie was terrible.", "same words, opposite meaning"),
    ("A man is playing a guitar.", "The stock market fell sharply on Monday.", "unrelated"),
    (
        "Cats sleep a lot.",
        "Cats sleep a lot. " * 6 + "They nap in the sun for most of the afternoon.",
        "short vs long text on one topic",
    ),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "mpnet"])
    parser.add_argument(
        "--data-dir", default=os.environ.get("EMBEDLAB_DATA", str(ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    from embedlab.config import compose_specs
    from embedlab.data.sts import load_sts
    from embedlab.encode.encoder import Encoder
    from embedlab.studies.doc_similarity import SIMILARITY_FUNCTIONS, paired_similarity, similarity_spearman
    from embedlab.tasks.model import build_model

    torch.set_num_threads(1)
    stsb = compose_specs(["data=stsb", f"paths.data_dir={args.data_dir}"]).data
    test = load_sts(stsb, splits=("test",)).splits["test"]
    record: dict[str, object] = {"sts": "stsb test", "n_pairs": len(test), "models": {}}
    for name in args.models:
        specs = compose_specs([f"model={name}", "data=stsb", f"paths.data_dir={args.data_dir}"])
        raw = replace(
            specs, model=replace(specs.model, normalize=False)
        )  # raw mean pooling; normalised below
        model, _ = build_model(raw)
        n = len(test)
        enc = Encoder(model)  # the reference path, 64 texts a batch
        emb, stats = enc.encode(list(test.sentence1) + list(test.sentence2), what="sentences")
        pa, pb = enc.encode([p[0] for p in PAIRS], what="pairs")[0], enc.encode([p[1] for p in PAIRS])[0]
        views = {"raw": lambda x: x, "normalised": lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)}
        per_model: dict[str, object] = {"n_truncated": stats.n_truncated,
                                        "mean_norm_raw": float(np.linalg.norm(emb, axis=1).mean())}  # fmt: skip
        for view, f in views.items():
            a, b = f(emb[:n]), f(emb[n:])
            per_model[f"stsb_{view}"] = similarity_spearman(a, b, test.scores)
            per_model[f"pairs_{view}"] = [
                {"a": p[0][:60], "b": p[1][:60], "why": p[2],
                 **{fn: float(paired_similarity(f(pa[i : i + 1]), f(pb[i : i + 1]), fn)[0])
                    for fn in SIMILARITY_FUNCTIONS}}
                for i, p in enumerate(PAIRS)
            ]  # fmt: skip
        per_model["pair_norms_raw"] = [[float(np.linalg.norm(pa[i])), float(np.linalg.norm(pb[i]))]
                                       for i in range(len(PAIRS))]  # fmt: skip
        record["models"][name] = per_model  # type: ignore[index]
        print(f"\n### {name}: STS-B test Spearman x 100 ({n} pairs)\n")
        print("| embeddings | " + " | ".join(SIMILARITY_FUNCTIONS) + " |")
        print("|---|" + "---|" * len(SIMILARITY_FUNCTIONS))
        for view in views:
            row = per_model[f"stsb_{view}"]
            print(
                f"| {view} | "
                + " | ".join(f"{100 * row[f'spearman_{fn}']:.2f}" for fn in SIMILARITY_FUNCTIONS)
                + " |"
            )  # type: ignore[index]
        for view in views:
            print(f"\n{name}, hand-picked pairs, {view} embeddings\n")
            print("| pair | " + " | ".join(SIMILARITY_FUNCTIONS) + " |")
            print("|---|" + "---|" * len(SIMILARITY_FUNCTIONS))
            for row in per_model[f"pairs_{view}"]:  # type: ignore[union-attr]
                print(
                    f"| {row['why']} | " + " | ".join(f"{row[fn]:.3f}" for fn in SIMILARITY_FUNCTIONS) + " |"
                )
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
