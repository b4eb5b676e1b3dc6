"""Nearest neighbours and a similarity matrix of documents, with any model of our config.

    python experiments/document_similarity/doc_similarity.py model=mpnet data=medical data.max_texts=60 \
        +docsim.query=0 +docsim.k=5

Composes configs/evaluate.yaml (model, pooling, dimension, data) like evaluate.py; the
documents are a corpus config (data=medical, mlm_lee). Writes doc_similarity.json and
similarity_heatmap.png into the run folder (paths.output_dir, or +docsim.out=...).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

log = logging.getLogger("doc_similarity")


@hydra.main(version_base="1.3", config_path="../../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from embedlab.data.text_corpus import load_corpus
    from embedlab.encode.encoder import Encoder, EncodeSettings
    from embedlab.errors import ConfigError
    from embedlab.eval.doc_similarity import doc_similarity_report, plot_similarity_heatmap
    from embedlab.mlm_task import corpus_spec
    from embedlab.run import build_model

    opts = cfg.get("docsim") or {}
    if cfg.data.get("task") != "mlm":
        raise ConfigError(f"data={cfg.data.name} is not a document corpus: use data=medical or data=mlm_lee.")
    model, resolved = build_model(cfg)  # an unreachable hub model fails here, within seconds
    corpus = load_corpus(corpus_spec(cfg))
    encoder = Encoder(model, EncodeSettings(batch_size=int(cfg.data.eval_batch_size)))  # reference path
    report = doc_similarity_report(
        encoder, corpus.texts, labels=corpus.labels, query=int(opts.get("query", 0)), k=int(opts.get("k", 5))
    )
    out = Path(opts.get("out") or cfg.paths.output_dir)
    name = f"{cfg.model.name}_{corpus.name}"
    record = {
        "model": cfg.model.name,
        "model_source": resolved.source,
        "corpus": corpus.meta(),
        **report.as_dict(),
    }
    (out / f"{name}.json").parent.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    plot_similarity_heatmap(
        report.matrix, out / f"{name}_heatmap.png", labels=corpus.labels,
        title=f"{cfg.model.name}: cosine similarity of {len(corpus)} {corpus.name} documents (grouped by label)",
    )  # fmt: skip
    log.info(
        "Neighbours of document %d: %s",
        report.query,
        [(n.index, round(n.score, 4)) for n in report.neighbours],
    )
    i, j, s = report.pair
    log.info("Most similar pair: %d and %d (cosine %.4f); wrote %s", i, j, s, out / f"{name}.json")


if __name__ == "__main__":
    main()
