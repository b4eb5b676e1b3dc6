"""Example SQuAD questions with what a model retrieves for them, both ways.

    python experiments/qa_matching/examples.py --model minilm --data squad --threads 1 \
        --n 5 --seed 0 --out experiments/qa_matching/examples_minilm.md

Builds the model of configs/model/<model>.yaml, the encode backend of configs/encode/ and the
SQuAD data of configs/data/<data>.yaml (a question -> paragraph config) as evaluate.py does,
without composing a config. Draws ``--n`` questions (seeded) among those
with at least one other question on their paragraph, encodes every paragraph and every
question with embedlab's encode() (exact dot-product search, as index=none), and writes a
Markdown table: the top paragraph and whether it holds a gold answer (the answer_hit@1
test: case- and whitespace-insensitive containment), and the nearest *other* question,
whether it is about the same paragraph (squad_qq's relevance) and whether its gold answer
is one of the query's (what a FAQ bot would reply).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
log = logging.getLogger("qa_examples")


def _cell(text: str, limit: int = 220) -> str:
    """One Markdown table cell: no pipes or line breaks, long texts shortened with '...'."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _snippet(passage: str, answers: list[str], width: int = 90) -> str:
    """The passage around the first gold answer it contains (else its start), answer in bold."""
    from embedlab.eval.retrieval import normalise_answer_text

    flat = " ".join(passage.split())
    low = normalise_answer_text(flat)
    for a in answers:
        at = low.find(normalise_answer_text(a))
        if a.strip() and at >= 0:
            end = at + len(normalise_answer_text(a))
            start, stop = max(0, at - width), min(len(flat), end + width)
            pre = "..." if start else ""
            post = "..." if stop < len(flat) else ""
            return _cell(f"{pre}{flat[start:at]}**{flat[at:end]}**{flat[end:stop]}{post}", 10_000)
    return _cell(flat, 2 * width + 20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="a configs/model name")
    parser.add_argument("--data", default="squad", help="a SQuAD question -> paragraph data config")
    parser.add_argument("--backend", default="fast", help="a configs/encode name: fast or reference")
    parser.add_argument("--threads", type=int, default=None, help="torch threads while encoding")
    parser.add_argument("--n", type=int, default=5, help="questions drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: outputs/qa/examples_<model>.md")
    parser.add_argument("--data-dir", default=os.environ.get("EMBEDLAB_DATA", str(ROOT / "data")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import numpy as np

    from embedlab.config import compose_specs
    from embedlab.data.retrieval import load_retrieval_set
    from embedlab.encode.encoder import Encoder
    from embedlab.errors import ConfigError
    from embedlab.eval.arrays import topk_dot
    from embedlab.eval.retrieval import normalise_answer_text
    from embedlab.tasks.model import build_model

    overrides = [f"model={args.model}", f"data={args.data}", f"encode={args.backend}"]
    overrides += [f"paths.data_dir={args.data_dir}"]
    if args.threads is not None:
        overrides.append(f"encode.threads={args.threads}")
    specs = compose_specs(overrides)
    d = specs.data_cfg
    if d.get("format") != "squad_paragraphs":
        raise ConfigError(f"data={args.data} is not SQuAD question -> paragraph: use data=squad.")
    q2p = load_retrieval_set(d["format"], d["root"], split=d["split"], name=d["name"])
    q2q = load_retrieval_set("squad_questions", d["root"])  # same file; ids = SQuAD question ids
    assert q2p.answers is not None
    pool = [q for q in q2p.queries if q in q2q.queries]  # questions with a sibling on their paragraph
    picked = random.Random(args.seed).sample(pool, args.n)

    para_ids, paras = q2p.doc_ids, list(q2p.corpus.values())
    question_ids, questions = q2q.doc_ids, list(q2q.corpus.values())
    row_of = {q: i for i, q in enumerate(question_ids)}
    model, resolved = build_model(specs)
    encoder = Encoder(model, specs.encode.settings)  # batch size: the data config's eval_batch_size
    p_emb, p_stats = encoder.encode(paras, what="paragraphs")
    q_emb, q_stats = encoder.encode(questions, what="questions")
    log.info("encoded %d paragraphs in %.1fs, %d questions in %.1fs", len(paras), p_stats.seconds,
             len(questions), q_stats.seconds)  # fmt: skip
    rows = np.array([row_of[q] for q in picked])
    _, top_para = topk_dot(q_emb[rows], p_emb, 1)  # (n, 1)
    _, top_q = topk_dot(q_emb[rows], q_emb, 1, exclude=rows)  # never the question itself

    lines = [
        f"Model `{args.model}` ({resolved.source}), encode backend `{args.backend}`; "
        f"{len(picked)} questions drawn with seed {args.seed}. Bold: the gold answer "
        f"where the text contains it.",
        "",
        "| question | gold answer | top paragraph (question -> paragraph) | gold paragraph? | holds answer? "
        "| nearest other question (question -> question) | same paragraph? | its answer matches? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, qid in enumerate(picked):
        answers = q2p.answers[qid]
        gold = {normalise_answer_text(a) for a in answers}
        pid = para_ids[int(top_para[i, 0])]
        passage = q2p.corpus[pid]
        holds = any(g and g in normalise_answer_text(passage) for g in gold)
        nid = question_ids[int(top_q[i, 0])]
        same = nid in q2q.qrels[qid]
        match = bool(gold & {normalise_answer_text(a) for a in q2p.answers[nid]})
        yes = {True: "yes", False: "**no**"}
        lines.append(
            f"| {_cell(q2p.queries[qid])} | {_cell(' / '.join(answers), 80)} | {_snippet(passage, answers)} "
            f"| {yes[pid in q2p.qrels[qid]]} | {yes[holds]} | {_cell(q2q.corpus[nid])} "
            f"(answer: {_cell(' / '.join(q2p.answers[nid]), 60)}) | {yes[same]} | {yes[match]} |"
        )
    text = "\n".join(lines) + "\n"
    out = args.out or ROOT / "outputs" / "qa" / f"examples_{args.model}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
