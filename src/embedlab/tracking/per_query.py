"""Per-query and per-pair results beside results.json, and a TREC run file of the top-k ranking.

``per_query.csv.gz``: one row per (cell, query) with every metric at every k (retrieval), or per
(cell, pair) with the gold score and the predicted similarity (STS). The report reads these to test
configurations against each other on the same queries; ``run.trec`` (``qid Q0 docid rank score
tag``) is readable by trec_eval, ranx and ir_measures.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

PER_QUERY_FILE = "per_query.csv.gz"
RUN_FILE = "run.trec"


def write_per_query(path: Path, rows: Iterable[Mapping[str, object]]) -> Path:
    """Rows with the same keys (``cell``, ``id``, then values) as gzip CSV; floats to 9 significant digits (float32 exact)."""
    rows = list(rows)
    if not rows:
        raise ValueError("write_per_query: no rows")
    fields = list(rows[0])
    with gzip.open(path, "wt", newline="", compresslevel=6) as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.9g}" if isinstance(v, float) else v for k, v in row.items()})
    return path


def read_per_query(
    path: Path, cell: str, columns: Sequence[str], split: str | None = None
) -> list[dict[str, float]]:
    """Each of ``columns`` for one cell's rows (of ``split``, for STS files), keyed by query (or pair)
    id, from one pass over the file; a row missing a column's value is left out of that column."""
    out: list[dict[str, float]] = [{} for _ in columns]
    with gzip.open(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            if r["cell"] == cell and (split is None or r.get("split") == split):
                for values, column in zip(out, columns, strict=True):
                    if r.get(column):
                        values[r["id"]] = float(r[column])
    return out


def write_trec_run(
    path: Path,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    ranking: tuple[np.ndarray, np.ndarray],
    tag: str,
) -> Path:
    """The ranking ``(scores (Q, K), doc indices (Q, K))`` (-1 padded) in TREC run format."""
    scores, ids = ranking
    with open(path, "w") as f:
        for q, row_scores, row_ids in zip(query_ids, scores, ids, strict=True):
            for rank, (s, d) in enumerate(zip(row_scores, row_ids, strict=True), 1):
                if d >= 0:
                    f.write(f"{q} Q0 {doc_ids[d]} {rank} {float(s):.6f} {tag}\n")
    return path
