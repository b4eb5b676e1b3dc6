"""Print a Markdown table of chosen metrics from results.json files (one row per file).

    python experiments/make_table.py 'outputs/scifact_index_sweep/*/results.json' \
        --row index.kind --metrics 'index_recall@10@{kind}' 'index_latency_p50_ms@{kind}'

`--row` names a config path (dot-separated) for the row label; `{kind}`, `{dim}` and
`{precision}` in a metric name are filled from the run's config; metric names are looked
up under every `split/dataset/` prefix present.
"""

from __future__ import annotations

import argparse
import glob
import json


def lookup(config: dict, path: str):
    node = config
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pattern")
    ap.add_argument("--row", nargs="+", required=True)
    ap.add_argument("--metrics", nargs="+", required=True)
    ap.add_argument("--digits", type=int, default=4)
    args = ap.parse_args()
    header = [
        m.replace("@{kind}", "").replace("@{dim}", "").replace("@{precision}", "") for m in args.metrics
    ]
    print("| " + " | ".join(args.row + header) + " |")
    print("|" + "---|" * (len(args.row) + len(args.metrics)))
    for path in sorted(glob.glob(args.pattern)):
        res = json.loads(open(path, encoding="utf-8").read())
        cfg, metrics = res["meta"]["config"], res["metrics"]
        fill = {
            "kind": lookup(cfg, "index.kind"),
            "dim": lookup(cfg, "dimension.size"),
            "precision": lookup(cfg, "quantization.embeddings"),
        }
        cells = [str(lookup(cfg, r)) for r in args.row]
        for name in args.metrics:
            key = name.format(**fill)
            value = next((v for k, v in metrics.items() if k.split("/", 2)[-1] == key), None)
            cells.append("n/a" if value is None else f"{value:.{args.digits}g}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
