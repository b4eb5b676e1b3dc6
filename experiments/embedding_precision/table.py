"""Precision x dimension table of a sweep: python experiments/embedding_precision/table.py <sweep dir>"""

from __future__ import annotations

import glob
import json
import sys

rows = []
for path in sorted(glob.glob(f"{sys.argv[1]}/*/results.json")):
    res = json.load(open(path, encoding="utf-8"))
    cfg = res["meta"]["config"]
    m = {k.split("/", 2)[-1]: v for k, v in res["metrics"].items()}
    dim, q = cfg["dimension"]["size"], cfg["quantization"]
    tag = f"@{dim}" if dim else ""
    if q["embeddings"] != "float32":
        tag += "@" + q["embeddings"] + (f"+rescore{q['rescore_multiplier']}" if q["rescore_multiplier"] else "")
    bpv = m.get("bytes_per_vector" + tag) or m["bytes_per_vector@float32"]
    rows.append((cfg["dimension"]["name"], q["name"], m["ndcg@10" + tag], m["recall@10" + tag], bpv))
full = next(r for r in rows if r[0] == "full" and r[1] == "none")
print("| dimension | precision | nDCG@10 | recall@10 | bytes/vector | nDCG kept | memory saved |")
print("|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: -r[2]):
    print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.4f} | {r[4]:.0f} | {100 * r[2] / full[2]:.1f}% | {full[4] / r[4]:.0f}x |")
