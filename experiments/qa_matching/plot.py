"""Bar chart of the headline SQuAD metrics per model, read from this folder's results.json files.

    .venv/bin/python experiments/qa_matching/plot.py   # -> experiments/qa_matching/qa_matching.png

Reads every ``<label>_<data>.results.json`` beside this script (data = squad or squad_qq;
the label is a model name or a variant of one) and draws one panel per data set, one bar group per metric, one bar per model. Also
prints the README's results table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (results key suffix, label) per data set; keys live under "test/<data>/"
PANELS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "squad": (
        "SQuAD dev: question -> paragraph (10,570 questions, 2,067 paragraphs)",
        [
            ("recall@1", "Recall@1"),
            ("recall@5", "Recall@5"),
            ("recall@10", "Recall@10"),
            ("mrr@10", "MRR@10"),
            ("ndcg@10", "nDCG@10"),
            ("answer_hit@1", "answer hit@1"),
            ("answer_hit@5", "answer hit@5"),
            ("answer_hit@10", "answer hit@10"),
        ],
    ),
    "squad_qq": (
        "SQuAD dev: question -> same-paragraph question (10,559 queries, 10,570 questions)",
        [
            ("accuracy@1", "accuracy@1"),
            ("recall@1", "Recall@1"),
            ("recall@5", "Recall@5"),
            ("recall@10", "Recall@10"),
            ("mrr@10", "MRR@10"),
            ("ndcg@10", "nDCG@10"),
        ],
    ),
}
MODEL_ORDER = [
    "minilm_l3",
    "minilm_l3_msl256",
    "minilm",
    "mpnet",
]  # fastest first; others follow alphabetically


def load(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{data: {model: metrics}} from ``<model>_<data>.results.json``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted(folder.glob("*.results.json")):
        res = json.loads(path.read_text(encoding="utf-8"))
        data = res["meta"]["config"]["data"]["name"]
        suffix = f"_{data}.results.json"
        if not path.name.endswith(suffix):
            raise SystemExit(f"{path.name}: expected a name ending in {suffix} (it holds data={data}).")
        model = path.name[: -len(suffix)]  # the file's label: a model, or a variant such as minilm_l3_msl256
        prefix = f"test/{data}/"
        metrics = {k[len(prefix) :]: v for k, v in res["metrics"].items() if k.startswith(prefix)}
        metrics["wall_time_s"] = res["meta"]["wall_time_s"]
        out.setdefault(data, {})[model] = metrics
    if not out:
        raise SystemExit(f"No *.results.json in {folder}: copy each run's results.json here first.")
    return out


def ordered(models: list[str]) -> list[str]:
    return sorted(models, key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m))


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for data, (title, metrics) in PANELS.items():
        if data not in results:
            continue
        # throughput and run time on the shared 2-core box (other jobs running: rough)
        extra = [
            ("encode_queries_per_s", "queries/s"),
            ("encode_documents_per_s", "docs/s"),
            ("wall_time_s", "run s"),
        ]
        lines += [f"**{title}**", "", "| model | " + " | ".join(lab for _, lab in metrics + extra) + " |"]
        lines.append("|---|" + "---|" * (len(metrics) + len(extra)))
        for model in ordered(list(results[data])):
            m = results[data][model]
            cells = [f"{m[k]:.4f}" for k, _ in metrics]
            cells += [f"{m[k]:.0f}" for k, _ in extra]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]], out: Path) -> None:
    from embedlab.viz.plots import plot_grouped_bars

    panels = []
    for data in (d for d in PANELS if d in results):
        title, metrics = PANELS[data]
        series = {m: [results[data][m][k] for k, _ in metrics] for m in ordered(list(results[data]))}
        panels.append((title, [lab for _, lab in metrics], series))
    plot_grouped_bars(panels, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", type=Path, default=HERE)
    ap.add_argument("--out", type=Path, default=HERE / "qa_matching.png")
    args = ap.parse_args()
    results = load(args.folder)
    print(table(results))
    plot(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
