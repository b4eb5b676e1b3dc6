"""Two compact views of the model_comparison sweep report (report.csv), as Markdown.

    python experiments/model_comparison/summarize.py experiments/model_comparison/report/report.csv

A: quality of each model x pooling at full dimension, float32 (per dataset).
B: for each model with mean pooling, quality over dimension x embedding precision.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

MODELS = ["minilm_l3", "minilm", "mpnet"]
POOLINGS = ["mean", "cls", "max"]
DIMS = ["full", "d128", "pca128"]
PRECISIONS = ["none", "int8", "binary"]


def load(path: Path) -> dict[tuple[str, ...], str]:
    cells: dict[tuple[str, ...], str] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            key = (row["data"], row["model"], row["pooling"], row["dimension"], row["quantization"])
            q = row["quality_mean"]
            cells[key] = (
                f"{float(q):.4f}" if q not in ("", "nan") else ("failed" if row["n_failed"] != "0" else "-")
            )
    return cells


def main(path: str) -> None:
    cells = load(Path(path))
    datasets = sorted({k[0] for k in cells})
    print("### A. Model x pooling (full dimension, float32)\n")
    for data in datasets:
        print(f"**{data}**\n\n| model | " + " | ".join(POOLINGS) + " |\n|---|" + "---|" * len(POOLINGS))
        for m in MODELS:
            print(
                f"| {m} | "
                + " | ".join(cells.get((data, m, p, "full", "none"), "-") for p in POOLINGS)
                + " |"
            )
        print()
    print("### B. Dimension x embedding precision (mean pooling)\n")
    grid = defaultdict(list)
    for data in datasets:
        print(
            f"**{data}**\n\n| model | dimension | "
            + " | ".join(PRECISIONS)
            + " |\n|---|---|"
            + "---|" * len(PRECISIONS)
        )
        for m in MODELS:
            for d in DIMS:
                vals = [cells.get((data, m, "mean", d, q), "-") for q in PRECISIONS]
                grid[data].append(vals)
                print(f"| {m} | {d} | " + " | ".join(vals) + " |")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "report" / "report.csv"))
