"""Nearest neighbours and a similarity matrix of documents, with any model of our configs.

    python experiments/document_similarity/doc_similarity.py --model mpnet --data medical --max-texts 60 \
        --query 0 --k 5

The model is a configs/model name (``--name-or-path`` for model=saved), built as evaluate.py
builds it; the documents are a corpus config (``--data medical`` or ``mlm_lee``). Writes
<model>_<corpus>.json and <model>_<corpus>_heatmap.png into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from embedlab.config import compose_specs
from embedlab.data.text_corpus import load_corpus
from embedlab.encode.encoder import Encoder, EncodeSettings
from embedlab.errors import ConfigError
from embedlab.studies.doc_similarity import doc_similarity_report
from embedlab.tasks.model import build_model
from embedlab.viz.plots import plot_similarity_heatmap

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
log = logging.getLogger("doc_similarity")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="a configs/model name")
    parser.add_argument("--name-or-path", default=None, help="model folder for --model saved")
    parser.add_argument(
        "--pooling", default="mean", help="a configs/pooling mode: mean, cls, max, weightedmean"
    )
    parser.add_argument("--data", default="medical", help="a corpus config: medical or mlm_lee")
    parser.add_argument("--max-texts", type=int, default=None, help="a seeded sample of the documents")
    parser.add_argument("--query", type=int, default=0, help="the document whose neighbours are listed")
    parser.add_argument("--k", type=int, default=5, help="neighbours listed")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the data config's eval_batch_size"
    )
    parser.add_argument("--data-dir", default=os.environ.get("EMBEDLAB_DATA", str(ROOT / "data")))
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "document_similarity")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    overrides = [f"model={args.model}", f"pooling={args.pooling}", f"data={args.data}"]
    overrides += [f"paths.data_dir={args.data_dir}"]
    if args.name_or_path:
        overrides.append(f"model.name_or_path={args.name_or_path}")
    if args.max_texts is not None:
        overrides.append(f"data.max_texts={args.max_texts}")
    specs = compose_specs(overrides, check=False)  # the corpus is read, not trained on
    if specs.task != "mlm":
        raise ConfigError(f"data={args.data} is not a document corpus: use data=medical or data=mlm_lee.")
    batch_size = args.batch_size or int(specs.data_cfg["eval_batch_size"])
    model, resolved = build_model(specs)
    corpus = load_corpus(specs.data)
    encoder = Encoder(model, EncodeSettings(batch_size=batch_size))  # the reference path
    report = doc_similarity_report(encoder, corpus.texts, labels=corpus.labels, query=args.query, k=args.k)
    name = f"{args.model}_{corpus.name}"
    record = {
        "model": args.model,
        "model_source": resolved.source,
        "corpus": corpus.meta(),
        **report.as_dict(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    plot_similarity_heatmap(
        report.matrix, args.out / f"{name}_heatmap.png", labels=corpus.labels,
        title=f"{args.model}: cosine similarity of {len(corpus)} {corpus.name} documents (grouped by label)",
    )  # fmt: skip
    log.info(
        "Neighbours of document %d: %s",
        report.query,
        [(i, round(score, 4)) for i, score in report.neighbours],
    )
    i, j, s = report.pair
    log.info("Most similar pair: %d and %d (cosine %.4f); wrote %s", i, j, s, args.out / f"{name}.json")


if __name__ == "__main__":
    main()
