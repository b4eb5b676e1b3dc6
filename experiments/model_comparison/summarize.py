"""Compact views of the model_comparison report (report.csv), as Markdown, with 95% intervals.

    python experiments/model_comparison/summarize.py experiments/model_comparison/report/report.csv

A: quality of each model x pooling at full dimension, float32 (per dataset).
B: for each model with mean pooling, quality over dimension x embedding precision.
C: SciFact's lexical baseline and hybrids (BM25, each model fused with BM25) beside the dense models.
A cell reads ``quality [95% CI]``; **best** marks the dataset's best, ``=`` a configuration
statistically tied with it (paired test on the same queries / pairs, Holm-corrected).
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


def _cell(row: dict[str, str]) -> str:
    q = row["quality_mean"]
    if q in ("", "nan"):
        return "failed" if row["n_failed"] != "0" else "-"
    text = f"{float(q):.4f}"
    if row.get("ci_low"):
        text += f" [{float(row['ci_low']):.3f}, {float(row['ci_high']):.3f}]"
    if row.get("rank") == "1":
        return f"**{text}** best"
    return text + (" =" if row.get("tied") == "True" else "")


def load(path: Path) -> dict[tuple[str, ...], str]:
    cells: dict[tuple[str, ...], str] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            key = (row["data"], row["model"], row["pooling"], row["dimension"], row["quantization"])
            cells[key + (row.get("fusion") or "none",)] = _cell(row)
    return cells


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def main(path: str) -> None:
    cells = load(Path(path))
    datasets = sorted({k[0] for k in cells})
    print("### A. Model x pooling (full dimension, float32)\n")
    for data in datasets:
        rows = [
            [m] + [cells.get((data, m, p, "full", "none", "none"), "-") for p in POOLINGS] for m in MODELS
        ]
        print(f"**{data}**\n\n" + table(["model", *POOLINGS], rows))
    print("### B. Dimension x embedding precision (mean pooling)\n")
    for data in datasets:
        rows = [
            [m, d] + [cells.get((data, m, "mean", d, q, "none"), "-") for q in PRECISIONS]
            for m in MODELS
            for d in DIMS
        ]
        print(f"**{data}**\n\n" + table(["model", "dimension", *PRECISIONS], rows))
    hybrid = defaultdict(dict)
    for (data, model, _pooling, dim, quant, fusion), text in cells.items():
        if model == "bm25" or (fusion not in ("none", "-") and dim == "full" and quant == "none"):
            hybrid[data][(model, fusion)] = text
    for data, found in hybrid.items():
        print(f"### C. Lexical baseline and hybrids ({data}, mean pooling, full dimension, float32)\n")
        rows = [["bm25", found.get(("bm25", "-"), "-"), "", ""]]
        for m in MODELS:
            dense = cells.get((data, m, "mean", "full", "none", "none"), "-")
            rows.append([m, dense, found.get((m, "rrf"), "-"), found.get((m, "convex"), "-")])
        print(table(["model", "alone", "+ BM25 (RRF)", "+ BM25 (convex)"], rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "report" / "report.csv"))
