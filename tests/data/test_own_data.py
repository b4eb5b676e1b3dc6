"""Your own data from the command line (README "Your own data"): scored pairs scored whole or per
split, a BEIR folder with only a test split, and a question -> passage file as a retrieval set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from embedlab.data.retrieval import load_qa_pairs
from embedlab.data.sts import STSSpec, load_sts
from embedlab.errors import DataError


def write_pairs(path: Path, n: int, offset: int = 0) -> Path:
    """``n`` scored pairs with scores in [1, 5] and a header."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sentence1", "sentence2", "score"])
        for i in range(offset, offset + n):
            w.writerow([f"the cat number {i} sat", f"a dog number {i} ran", 1 + i % 5])
    return path


def run(make_cfg, task: str, out: Path, *overrides: str) -> tuple[dict[str, float], dict]:
    from embedlab.jobs import evaluate, train

    cfg = make_cfg("model=tiny_bert", "logger=none", *overrides, task=task, output_dir=out)
    metrics, _ = (train if task == "train" else evaluate)(cfg)
    return metrics, json.loads((out / "results.json").read_text())


def test_evaluate_scores_every_row_of_a_test_file(make_cfg, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.csv", 37)
    data = ["data=sts_file", f"data.files.test={pairs}", "data.score_range=[1,5]"]
    metrics, results = run(make_cfg, "evaluate", tmp_path / "run", *data)
    assert metrics["test/custom/n_pairs"] == 37  # every row, not a 10% split
    assert -1.0 <= metrics["test/custom/spearman_cosine"] <= 1.0
    assert not any(k.startswith("val/") for k in metrics)  # no validation file: skipped, not an error
    assert results["meta"]["data"]["pairs"] == {"test": 37}


def test_train_on_files_per_split(make_cfg, tmp_path: Path) -> None:
    files = {
        s: write_pairs(tmp_path / f"{s}.csv", n, o) for s, n, o in [("train", 24, 0), ("validation", 9, 50)]
    }
    data = ["data=sts_file", "data.score_range=[1,5]", *(f"data.files.{s}={p}" for s, p in files.items())]
    metrics, _ = run(make_cfg, "train", tmp_path / "run", *data, "debug=fast", "save_model=false")
    assert metrics["val/custom/n_pairs"] == 9 and not any(k.startswith("test/") for k in metrics)


def test_fine_tuning_without_train_and_validation_files_says_what_to_set(make_cfg, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.csv", 12)
    data = ["data=sts_file", f"data.files.test={pairs}", "data.score_range=[1,5]", "debug=fast"]
    with pytest.raises(DataError, match=r"needs train and validation.*data.files.train=<file>"):
        run(make_cfg, "train", tmp_path / "run", *data)


def test_only_named_splits_are_read_and_all_excludes_the_rest(tmp_path: Path) -> None:
    pairs = str(write_pairs(tmp_path / "pairs.csv", 20))
    spec = STSSpec(name="mine", format="table", score_range=(1.0, 5.0), files={"all": None, "test": pairs})
    assert list(load_sts(spec).splits) == ["test"]
    whole = STSSpec(
        name="mine", format="table", score_range=(1.0, 5.0), files={"all": pairs}, split_fractions=(0, 0, 1)
    )
    assert {k: len(v) for k, v in load_sts(whole).splits.items()} == {"test": 20}
    with pytest.raises(DataError, match="not both"):
        load_sts(
            STSSpec(name="mine", format="table", score_range=(1.0, 5.0), files={"all": pairs, "test": pairs})
        )
    with pytest.raises(DataError, match=r"no split\(s\) \['train'\].*data.files.train="):
        load_sts(spec, splits=("train",))
    with pytest.raises(DataError, match="names no files.*data.files.test="):
        load_sts(STSSpec(name="mine", format="table", score_range=(1.0, 5.0), files={"all": None}))


def test_eval_splits_none_of_which_exists_is_a_clear_error(make_cfg, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.csv", 12)
    data = ["data=sts_file", f"data.files.test={pairs}", "data.score_range=[1,5]", "eval_splits=[validation]"]
    with pytest.raises(DataError, match=r"holds only \['test'\].*eval_splits=\[test\]"):
        run(make_cfg, "evaluate", tmp_path / "run", *data)


def test_beir_folder_with_only_a_test_split(make_cfg, tmp_path: Path) -> None:
    root = tmp_path / "mine"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"document about topic {i}"} for i in range(6)]
    queries = [{"_id": f"q{i}", "text": f"topic {i}?"} for i in range(3)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text("".join(f"q{i}\td{i}\t1\n" for i in range(3)))
    data = ["data=beir", f"data.root={root}", "data.name=mine", "index=none"]
    metrics, results = run(make_cfg, "evaluate", tmp_path / "run", *data)
    assert 0.0 <= metrics["test/mine/ndcg@10"] <= 1.0
    assert results["meta"]["data"]["n_docs"] == 6 and results["meta"]["data"]["n_queries"] == 3


QA = [
    {"q": "Why do cats purr?", "context": "Cats purr when content.", "a": "when content"},
    {"q": "When was the tower built?", "context": "The tower was built in 1889.", "a": "1889"},
    {"q": "Who purrs?", "context": "Cats purr when content.", "a": ""},  # same passage, no answer
    {
        "q": "Why do cats purr?",
        "context": "A purr is a sound cats make.",
        "a": "a sound",
    },  # repeated question
]
COLUMNS = {"question": "q", "passage": "context", "answer": "a"}


def write_qa(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_qa_pairs_corpus_qrels_and_answers(tmp_path: Path, suffix: str) -> None:
    s = load_qa_pairs(write_qa(tmp_path / f"qa{suffix}", QA), COLUMNS, name="mine")
    assert s.corpus == {
        "p00000": "Cats purr when content.",
        "p00001": "The tower was built in 1889.",
        "p00002": "A purr is a sound cats make.",
    }  # distinct passages, ids in first-seen order
    assert s.queries == {
        "q00000": "Why do cats purr?",
        "q00001": "When was the tower built?",
        "q00002": "Who purrs?",
    }
    assert s.qrels == {"q00000": {"p00000": 1, "p00002": 1}, "q00001": {"p00001": 1}, "q00002": {"p00000": 1}}
    assert s.answers == {"q00000": ["when content", "a sound"], "q00001": ["1889"], "q00002": []}
    assert s.stats == {"n_rows": 4, "n_docs": 3, "n_queries": 3, "n_queries_without_answer": 1}
    without = load_qa_pairs(tmp_path / f"qa{suffix}", {"question": "q", "passage": "context"})
    assert without.answers is None and without.corpus == s.corpus


def test_qa_pairs_bad_input_says_what_to_fix(tmp_path: Path) -> None:
    path = write_qa(tmp_path / "qa.csv", QA)
    with pytest.raises(DataError, match=r"column 'question' not found.*'context'"):
        load_qa_pairs(path)
    with pytest.raises(DataError, match=r"data.columns.<question\|passage\|answer>"):
        load_qa_pairs(path, {**COLUMNS, "answer": "answers"})
    empty = write_qa(tmp_path / "empty.csv", [*QA, {"q": "  ", "context": "x", "a": ""}])
    with pytest.raises(DataError, match=r"empty.csv:6: the question \(column 'q'\) is empty"):
        load_qa_pairs(empty, COLUMNS)
    (tmp_path / "header.csv").write_text("q,context,a\n")
    with pytest.raises(DataError, match="holds no .question, passage. rows"):
        load_qa_pairs(tmp_path / "header.csv", COLUMNS)
    with pytest.raises(DataError, match="QA pairs file not found"):
        load_qa_pairs(tmp_path / "nope.csv")


def test_evaluate_qa_pairs_from_the_command_line(make_cfg, tmp_path: Path) -> None:
    path = write_qa(tmp_path / "qa.jsonl", QA)
    cols = [f"data.columns.{k}={v}" for k, v in COLUMNS.items()]
    metrics, results = run(
        make_cfg, "evaluate", tmp_path / "run", "data=qa_pairs", f"data.file={path}", *cols
    )
    assert 0.0 <= metrics["test/qa/ndcg@10"] <= 1.0
    assert metrics["test/qa/answer_hit@5"] == 1.0  # 3 passages: every answer is in the top 5
    assert results["meta"]["data"]["n_docs"] == 3 and results["meta"]["data"]["n_queries"] == 3
