"""Per-language tables and plot of the multilingual sweeps:

    .venv/bin/python experiments/multilingual/table.py outputs/multilingual/stsb_multi_mt outputs/multilingual/tatoeba

Reads every <sweep>/*/results.json; writes results.json (the metrics per model and language),
tables.md and languages.png beside this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STS_LANGS = ["en", "de", "es", "fr", "it", "nl", "pl", "pt", "ru", "ja", "zh"]
TATOEBA = {"de": "deu", "es": "spa", "fr": "fra", "it": "ita", "nl": "nld", "pl": "pol", "pt": "por",
           "ru": "rus", "ja": "jpn", "zh": "cmn"}  # fmt: skip


def collect(sweeps: list[str]) -> dict:
    sts: dict[str, dict[str, float]] = {}
    bitext: dict[str, dict[str, float]] = {}
    for sweep in sweeps:
        for path in sorted(Path(sweep).glob("*/results.json")):
            res = json.loads(path.read_text(encoding="utf-8"))
            cfg, metrics = res["meta"]["config"], res["metrics"]
            model = cfg["model"]["name"]
            if cfg["data"]["name"].startswith("stsb_"):
                lang = cfg["data"]["lang"]
                sts.setdefault(model, {})[lang] = metrics[f"test/stsb_{lang}/spearman_cosine"]
            elif cfg["data"]["name"] == "tatoeba":
                bitext[model] = {
                    lang: metrics[f"test/tatoeba/accuracy@{lang}"] for lang in cfg["data"]["langs"]
                }
                bitext[model]["mean"] = metrics["test/tatoeba/accuracy"]
    return {"stsb_multi_mt_test_spearman": sts, "tatoeba_accuracy": bitext}


def render(res: dict) -> str:
    sts, bitext = res["stsb_multi_mt_test_spearman"], res["tatoeba_accuracy"]
    models = list(sts) or list(bitext)
    lines = ["### STS-B test, Spearman x 100 (English original and DeepL translations)", "",
             "| model | " + " | ".join(STS_LANGS) + " | mean of 10 translations | kept vs en |",
             "|---|" + "---|" * (len(STS_LANGS) + 2)]  # fmt: skip
    for m in models:
        row = sts.get(m, {})
        if not row:
            continue
        other = [row[lang] for lang in STS_LANGS[1:] if lang in row]
        mean = sum(other) / len(other) if other else float("nan")
        cells = [f"{100 * row[lang]:.1f}" if lang in row else "-" for lang in STS_LANGS]
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {100 * mean:.1f} | {100 * mean / row['en']:.0f}% |"
        )
    langs = [lang for lang in STS_LANGS[1:]]
    lines += ["", "### Tatoeba bitext retrieval accuracy x 100 (mean of xx->en and en->xx)", "",
              "| model | " + " | ".join(f"{lang} ({TATOEBA[lang]})" for lang in langs) + " | mean |",
              "|---|" + "---|" * (len(langs) + 1)]  # fmt: skip
    for m in models:
        row = bitext.get(m)
        if not row:
            continue
        cells = [f"{100 * row[TATOEBA[lang]]:.1f}" for lang in langs]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {100 * row['mean']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    from embedlab.viz.plots import plot_lines

    sts, bitext = res["stsb_multi_mt_test_spearman"], res["tatoeba_accuracy"]
    langs = list(TATOEBA)
    plot_lines([
        ("STS-B test Spearman x 100", "language (en: original, others: DeepL translations)", STS_LANGS,
         {m: [100 * row.get(lang, float("nan")) for lang in STS_LANGS] for m, row in sts.items()}),
        ("Tatoeba bitext accuracy x 100 (xx <-> en)", "language", langs,
         {m: [100 * row[TATOEBA[lang]] for lang in langs] for m, row in bitext.items()}),
    ], path)  # fmt: skip


def main() -> None:
    res = collect(sys.argv[1:])
    (HERE / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    tables = render(res)
    (HERE / "tables.md").write_text(tables)
    print(tables)
    plot(res, HERE / "languages.png")


if __name__ == "__main__":
    main()
