"""Out-of-vocabulary words: tokenizer statistics per model and corpus, and SciFact retrieval
with typo'd queries (0 / 5 / 10 / 20% of query words) for subword transformers and fastText.

    EMBEDLAB_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python experiments/out_of_vocabulary/study.py

Each model is built from the specs embedlab.config.compose_specs composes, exactly as
`evaluate.py model=<m> data=scifact` builds it (fastText: trained on the
SciFact corpus, cached), encodes with the run default (encode=fast, 1 thread) and reads / fills
the same embedding cache as evaluate.py, so the corpus is encoded
once per model and every noise level encodes only its 300 queries. Writes results.json,
tables.md and ndcg_vs_typos.png beside this file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from embedlab.viz.plots import mean_std, plot_metric_vs_noise

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
log = logging.getLogger("oov_study")


def corpora(data_dir: str) -> dict[str, list[str]]:
    """The texts whose words the tokenizer table counts."""
    from embedlab.config import compose_specs
    from embedlab.data.retrieval import load_scifact
    from embedlab.data.sts import load_sts
    from embedlab.data.text_corpus import load_corpus

    where = f"paths.data_dir={data_dir}"
    stsb = load_sts(compose_specs(["data=stsb", where]).data, splits=("test",)).splits["test"]
    scifact = load_scifact(data_dir, "test")
    medical = load_corpus(compose_specs(["data=medical", where], check=False).data)  # read, not trained on
    return {
        "STS-B test sentences": list(stsb.sentence1) + list(stsb.sentence2),
        "SciFact queries (test)": list(scifact.queries.values()),
        "SciFact corpus": list(scifact.corpus.values()),
        "Medical abstracts": list(medical.texts),
    }


def build(name: str, data_dir: str):
    """(model, resolved), its encoder, and whether it is a subword transformer: as ``evaluate.py
    model=<name> data=scifact encode=fast encode.threads=1`` (fastText: trained on the SciFact corpus).
    The encoder has evaluate.py's backend, cache and key, so either fills the cache for the other."""
    from embedlab.config import compose_specs
    from embedlab.tasks.model import build_model, make_encoder

    overrides = [f"model={name}", "data=scifact", "encode=fast", "encode.threads=1"]
    specs = compose_specs([*overrides, f"paths.data_dir={data_dir}"])
    model, resolved = build_model(specs)
    return (model, resolved), make_encoder(specs, model), specs.model_kind == "transformer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "minilm_l3", "mpnet", "fasttext"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument(
        "--data-dir", default=os.environ.get("EMBEDLAB_DATA", str(ROOT.parent / "shared" / "data"))
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import torch

    from embedlab.data.retrieval import load_scifact
    from embedlab.eval.retrieval_task import RetrievalEvalSettings
    from embedlab.studies.oov import add_typos, retrieval_under_typos, tokenizer_stats, vocabulary_stats

    torch.set_num_threads(1)
    texts = corpora(args.data_dir)
    scifact = load_scifact(args.data_dir, "test")
    clean_queries = list(scifact.queries.values())
    noisy_queries = {r: add_typos(clean_queries, r, args.seeds[0]).texts for r in args.rates}
    settings = RetrievalEvalSettings(ks=(10, 100), index=None, n_latency_queries=0)
    out: dict = {
        "rates": args.rates,
        "seeds": args.seeds,
        "tokenizer": [],
        "noise_vocab": [],
        "retrieval": [],
    }
    for name in args.models:
        (model, resolved), encoder, subword = build(name, args.data_dir)
        log.info("%s: %s (%s)", name, resolved.path, resolved.source)
        first = model[0]
        if subword:
            for corpus, corpus_texts in texts.items():
                st = tokenizer_stats(model.tokenizer, corpus_texts)
                out["tokenizer"].append({"model": name, "corpus": corpus, **st.as_dict()})
            for rate, queries in noisy_queries.items():
                st = tokenizer_stats(model.tokenizer, queries)
                out["noise_vocab"].append({"model": name, "rate": rate, "tokens_per_word": st.tokens_per_word,
                                           "split_word_rate": st.split_word_rate})  # fmt: skip
        else:  # fastText: words outside its vocabulary get n-gram vectors
            for corpus, corpus_texts in texts.items():
                vs = vocabulary_stats(first.tokenizer.vocab, corpus_texts, lowercase=first.lowercase)
                out["tokenizer"].append({"model": name, "corpus": corpus, "oov_word_rate": vs.oov_word_rate,
                                         "n_words": vs.n_words, "n_distinct_words": vs.n_distinct_words})  # fmt: skip
            for rate, queries in noisy_queries.items():
                vs = vocabulary_stats(first.tokenizer.vocab, queries, lowercase=first.lowercase)
                out["noise_vocab"].append({"model": name, "rate": rate, "oov_word_rate": vs.oov_word_rate})
        cache = encoder.cache
        rows = retrieval_under_typos(encoder, scifact, args.rates, args.seeds, settings)
        log.info(
            "%s: %d texts encoded, %d from the cache", name, cache.stats.n_encoded, cache.stats.n_from_cache
        )
        for r in rows:
            out["retrieval"].append({"model": name, **{k: r[k] for k in
                                     ("rate", "seed", "n_eligible_words", "n_edited_words", "ndcg@10", "recall@10", "recall@100")}})  # fmt: skip
        out.setdefault("encode", {})[name] = {
            "n_encoded": cache.stats.n_encoded,
            "n_from_cache": cache.stats.n_from_cache,
        }
        del model
    (HERE / "results.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    tables = render(out)
    (HERE / "tables.md").write_text(tables)
    print(tables)
    plot_metric_vs_noise(out["retrieval"], HERE / "ndcg_vs_typos.png", metric="ndcg@10", ylabel="SciFact nDCG@10",
                         title="Retrieval with typo'd queries (corpus clean)")  # fmt: skip


def _ndcg(out: dict, model: str, rate: float) -> tuple[float, float]:
    return mean_std([r["ndcg@10"] for r in out["retrieval"] if r["model"] == model and r["rate"] == rate])


def render(out: dict) -> str:
    models = list(dict.fromkeys(r["model"] for r in out["retrieval"]))
    lines = ["### Tokenizers on clean text", "",
             "| model | corpus | words | tokens / word | words split | words with [UNK] | [UNK] share of tokens | most frequent split words |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in out["tokenizer"]:
        if "tokens_per_word" not in r:
            continue
        ex = ", ".join(f"{w} ({' '.join(p)})" for w, p in r["split_examples"][:3])
        lines.append(f"| {r['model']} | {r['corpus']} | {r['n_words']:,} | {r['tokens_per_word']:.3f} | "
                     f"{100 * r['split_word_rate']:.1f}% | {100 * r['unk_word_rate']:.3f}% | "
                     f"{100 * r['unk_token_rate']:.3f}% | {ex} |")  # fmt: skip
    ft = [r for r in out["tokenizer"] if "oov_word_rate" in r]
    if ft:
        lines += ["", "fastText (trained on the SciFact corpus, min_count 2): running words outside its vocabulary", "",
                  "| corpus | words | OOV words |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {r['corpus']} | {r['n_words']:,} | {100 * r['oov_word_rate']:.1f}% |" for r in ft]
    rates = out["rates"]
    lines += ["", f"### SciFact nDCG@10 with typo'd queries (mean ± std over seeds {out['seeds']})", "",
              "| model | " + " | ".join(f"{100 * r:g}% of words" for r in rates) + " | kept at 20% |",
              "|---|" + "---|" * (len(rates) + 1)]  # fmt: skip
    for m in models:
        cells = []
        for rate in rates:
            mean, sd = _ndcg(out, m, rate)
            cells.append(f"{mean:.4f}" + (f" ± {sd:.4f}" if rate > 0 else ""))
        kept = _ndcg(out, m, max(rates))[0] / _ndcg(out, m, 0.0)[0]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {100 * kept:.1f}% |")
    lines += ["", f"### The noisy queries themselves (seed {out['seeds'][0]})", "",
              "| model | " + " | ".join(f"{100 * r:g}%" for r in rates) + " |", "|---|" + "---|" * len(rates)]  # fmt: skip
    for m in models:
        rows = {r["rate"]: r for r in out["noise_vocab"] if r["model"] == m}
        if "tokens_per_word" in next(iter(rows.values())):
            lines.append(
                f"| {m}: tokens / word | "
                + " | ".join(f"{rows[r]['tokens_per_word']:.3f}" for r in rates)
                + " |"
            )
        else:
            lines.append(
                f"| {m}: OOV words | "
                + " | ".join(f"{100 * rows[r]['oov_word_rate']:.1f}%" for r in rates)
                + " |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
