"""Precision x dimension table of a sweep: python experiments/embedding_precision/table.py <sweep dir>"""

from __future__ import annotations

import glob
import json
import sys

from embedlab.eval.variants import deployed, read_cells

rows = []
for path in sorted(glob.glob(f"{sys.argv[1]}/*/results.json")):
    res = json.load(open(path, encoding="utf-8"))
    cfg = res["meta"]["config"]
    m = {k.split("/", 2)[-1]: v for k, v in res["metrics"].items()}
    cells = deployed(read_cells(res["meta"]["cells"]))  # the stored vectors: dimension x precision
    cell = next((c for c in cells if not c.index), cells[0].storage)
    name = (cfg["dimension"]["name"], cfg["quantization"]["name"])
    rows.append((*name, m[cell.key("ndcg@10")], m[cell.key("recall@10")], m[cell.bytes_key]))
full = next(r for r in rows if r[0] == "full" and r[1] == "none")
print("| dimension | precision | nDCG@10 | recall@10 | bytes/vector | nDCG kept | memory saved |")
print("|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: -r[2]):
    print(
        f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.0f} | {100 * r[2] / full[2]:.1f}% | {full[4] / r[4]:.0f}x |"
    )
