"""Concentration of pairwise distances per dimension: MiniLM / MPNet embeddings of STS-B
sentences (full, 256, 128, 64 truncated) next to Gaussian vectors of the same dimensions.

    EMBEDLAB_DATA=../shared/data .venv/bin/python experiments/dimensions/study.py --n 1000

Writes results.json, table.md and distances.png beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "mpnet"])
    parser.add_argument("--n", type=int, default=1000, help="distinct STS-B test sentences (seeded sample)")
    parser.add_argument("--dims", nargs="+", type=int, default=[0, 256, 128, 64], help="0: full")
    parser.add_argument(
        "--data-dir", default=os.environ.get("EMBEDLAB_DATA", str(ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    from embedlab.config import compose_specs
    from embedlab.data.sts import load_sts
    from embedlab.encode.encoder import Encoder
    from embedlab.studies.dimensions import dimension_study
    from embedlab.tasks.model import build_model
    from embedlab.viz.plots import plot_distance_histograms

    torch.set_num_threads(1)
    data = [f"paths.data_dir={args.data_dir}", "data=stsb"]
    test = load_sts(compose_specs(data).data, splits=("test",)).splits["test"]
    pool = list(dict.fromkeys(list(test.sentence1) + list(test.sentence2)))
    sentences = random.Random(args.seed).sample(pool, min(args.n, len(pool)))
    embeddings = {}
    for name in args.models:
        model, _ = build_model(compose_specs([f"model={name}", *data]))
        embeddings[name] = Encoder(model).encode(sentences, what="sentences")[0]  # (N, D), unit norm
    study = dimension_study(embeddings, dims=[d or None for d in args.dims], seed=args.seed)
    rows = study.rows()
    (HERE / "results.json").write_text(json.dumps({"n_sentences": len(sentences), "source": "stsb test",
                                                    "rows": rows}, indent=2) + "\n")  # fmt: skip
    lines = [
        "| source | dim | metric | mean | std | std/mean | relative contrast |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["metric"], -int(r["dim"]), str(r["source"]))):
        lines.append(f"| {r['source']} | {r['dim']} | {r['metric']} | {r['mean']:.3f} | {r['std']:.3f} | "
                     f"{r['cv']:.3f} | {r['relative_contrast']:.3f} |")  # fmt: skip
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_distance_histograms(study, HERE / "distances.png",
                             title=f"Pairwise distances / their mean, {len(sentences)} STS-B test sentences")  # fmt: skip


if __name__ == "__main__":
    main()
