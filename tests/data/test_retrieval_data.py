"""Retrieval loaders on the shared benchmark data (skipped without it), the mock set, bad input."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from embedlab.data.retrieval import (
    load_beir,
    load_scifact,
    load_squad_paragraphs,
    load_squad_questions,
    load_tatoeba,
    mock_retrieval_set,
    resolve_data_dir,
)
from embedlab.errors import DataError
from embedlab.eval.retrieval import retrieval_metrics

DATA = Path(os.environ.get("EMBEDLAB_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
needs_data = pytest.mark.skipif(
    not (DATA / "scifact_beir").is_dir(),
    reason=f"shared benchmark data not found at {DATA}; set EMBEDLAB_DATA to the folder holding scifact_beir/",
)


# --- real data -------------------------------------------------------------------------


@needs_data
def test_scifact() -> None:
    s = load_scifact(DATA)
    assert (len(s.corpus), len(s.queries), sum(map(len, s.qrels.values()))) == (5183, 300, 339)
    assert s.stats["n_queries_without_qrels"] == 1109 - 300 and s.stats["n_judgements_missing_doc"] == 0
    assert set(s.qrels) == set(s.queries) and not s.ignore_identical_ids and s.answers is None
    # title + " " + text
    assert s.corpus["4983"].startswith("Microstructural development of human newborn cerebral white matter")
    assert "imaging. Alterations of the architecture" in s.corpus["4983"]
    assert load_scifact(DATA).revision == s.revision
    train = load_scifact(DATA, "train")
    assert (len(train.queries), sum(map(len, train.qrels.values()))) == (809, 919)
    assert train.revision != s.revision


@needs_data
def test_squad_paragraphs() -> None:
    s = load_squad_paragraphs(DATA / "squad_v1.1" / "dev-v1.1.json.gz")
    assert (len(s.corpus), len(s.queries)) == (2067, 10570)
    assert s.stats["n_duplicate_paragraphs"] == 0
    assert all(len(r) == 1 for r in s.qrels.values())
    assert s.answers is not None and s.answers["56be4db0acb8001400a502ec"] == ["Denver Broncos"]
    (pid,) = s.qrels["56be4db0acb8001400a502ec"]
    assert "Denver Broncos" in s.corpus[pid]


@needs_data
def test_squad_questions() -> None:
    s = load_squad_questions(DATA / "squad_v1.1" / "dev-v1.1.json.gz")
    assert len(s.corpus) == 10570 and s.ignore_identical_ids
    assert len(s.queries) == 10570 - 11 == s.stats["n_queries"]  # 11 paragraphs have one question
    assert all(q not in rel for q, rel in s.qrels.items())
    assert all(q in s.qrels[d] for q, rel in s.qrels.items() for d in rel)  # symmetric


@needs_data
def test_tatoeba() -> None:
    b = load_tatoeba("deu", DATA)
    assert len(b.sentences) == len(b.english) == 1000
    assert b.english[0] == "Mary said she didn't know where Tom was."
    with pytest.raises(DataError, match="EMBEDLAB_DATA"):
        load_tatoeba("xxx", DATA)


# --- synthetic files -------------------------------------------------------------------


def _beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: str, gz: bool = True) -> Path:
    (folder / "qrels").mkdir(parents=True)
    lines = "".join(json.dumps(r) + "\n" for r in corpus)
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
            fh.write(lines)
    else:
        (folder / "corpus.jsonl").write_text(lines, encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\r\n" + qrels, encoding="utf-8")
    return folder


DOCS = [{"_id": "a", "title": "T", "text": "body"}, {"_id": "b", "title": "", "text": " only text "}]
QUERIES = [{"_id": "1", "text": "q one"}, {"_id": "2", "text": "q two"}, {"_id": "3", "text": "q three"}]


@pytest.mark.parametrize("gz", [True, False])
def test_beir_layout(tmp_path: Path, gz: bool) -> None:
    s = load_beir(
        _beir(tmp_path, DOCS, QUERIES, "1\ta\t1\r\n2\tb\t0\r\n1\tb\t1\r\n1\tb\t1\n", gz), name="tiny"
    )
    assert s.corpus == {"a": "T body", "b": "only text"}
    assert s.queries == {"1": "q one"}  # 2 has only a 0 judgement, 3 none
    assert s.qrels == {"1": {"a": 1, "b": 1}}
    assert s.stats["n_queries_without_qrels"] == 2 and s.stats["n_qrels_duplicate_lines"] == 1


@pytest.mark.parametrize(
    ("docs", "queries", "qrels", "message"),
    [
        (DOCS + DOCS[:1], QUERIES, "1\ta\t1\n", "Duplicate document id 'a'"),
        (DOCS, QUERIES + QUERIES[:1], "1\ta\t1\n", "Duplicate query id '1'"),
        ([], QUERIES, "1\ta\t1\n", "Empty corpus"),
        (DOCS, QUERIES, "1\ta\t1\n1\ta\t2\n", "judged both 1 and 2"),
        (DOCS, QUERIES, "1 a 1\n", "3 tab-separated columns"),
        (DOCS, QUERIES, "9\ta\t1\n", "No query"),
    ],
)
def test_beir_bad_input(tmp_path: Path, docs, queries, qrels, message) -> None:
    with pytest.raises(DataError, match=message):
        load_beir(_beir(tmp_path, docs, queries, qrels))


def test_missing_files_say_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="EMBEDLAB_DATA"):
        load_beir(tmp_path / "nope")
    _beir(tmp_path / "x", DOCS, QUERIES, "1\ta\t1\n")
    with pytest.raises(DataError, match=r"split 'dev'.*dev\.tsv.*paths\.data_dir"):
        load_beir(tmp_path / "x", "dev")
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="absent"):
        resolve_data_dir()
    with pytest.raises(DataError, match="SQuAD"):
        load_squad_paragraphs(tmp_path / "missing.json")
    with pytest.raises(DataError, match="Tatoeba"):
        load_tatoeba("deu", tmp_path)  # tmp_path exists but has no tatoeba_laser/


def _squad(path: Path, paragraphs: list[tuple[str, list[tuple[str, str, list[str]]]]]) -> Path:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "T",
                "paragraphs": [
                    {
                        "context": ctx,
                        "qas": [
                            {"id": i, "question": q, "answers": [{"text": a} for a in ans]}
                            for i, q, ans in qas
                        ],
                    }
                    for ctx, qas in paragraphs
                ],
            }
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad_synthetic_dedup_and_question_matching(tmp_path: Path) -> None:
    path = _squad(
        tmp_path / "s.json",
        [
            (
                "Paris is in France.",
                [("a1", "Where is Paris?", ["France", "France"]), ("a2", "Paris is in?", ["France"])],
            ),
            ("Cats purr.", [("b1", "What do cats do?", ["purr"]), ("b2", "Who purrs?", ["Cats"])]),
            ("Paris is in France.", [("c1", "Paris lies in which country?", ["France"])]),  # same text
            ("Lonely.", [("d1", "Alone?", [])]),
        ],
    )
    q2p = load_squad_paragraphs(path)
    assert q2p.stats["n_duplicate_paragraphs"] == 1 and len(q2p.corpus) == 3
    assert q2p.qrels["c1"] == q2p.qrels["a1"] == {"p00000": 1}
    assert q2p.answers == {
        "a1": ["France"],
        "a2": ["France"],
        "b1": ["purr"],
        "b2": ["Cats"],
        "c1": ["France"],
        "d1": [],
    }
    assert q2p.stats["n_queries_without_answer"] == 1

    q2q = load_squad_questions(path)
    assert q2q.ignore_identical_ids and list(q2q.corpus) == ["a1", "a2", "b1", "b2", "c1", "d1"]
    assert q2q.qrels["a1"] == {"a2": 1, "c1": 1} and "d1" not in q2q.queries
    # embeddings = paragraph one-hot: a question ties with itself and its siblings
    para = {"a1": 0, "a2": 0, "c1": 0, "b1": 1, "b2": 1, "d1": 2}
    emb = np.eye(3, dtype=np.float32)[[para[q] for q in q2q.corpus]]
    qemb = emb[[list(q2q.corpus).index(q) for q in q2q.queries]]
    args = (list(q2q.queries), list(q2q.corpus), q2q.qrels)
    kw = dict(ks=(1, 5), query_emb=qemb, doc_emb=emb)
    right = retrieval_metrics(*args, **kw, ignore_identical_ids=q2q.ignore_identical_ids)
    wrong = retrieval_metrics(*args, **kw)
    assert right["accuracy@1"] == 1.0 and right["recall@5"] == 1.0
    assert wrong["accuracy@1"] < 1.0  # a1 retrieves itself first and that is not relevant

    dup = _squad(tmp_path / "d.json", [("x", [("same", "q", ["a"])]), ("y", [("same", "q2", ["b"])])])
    with pytest.raises(DataError, match="Duplicate question id 'same'"):
        load_squad_paragraphs(dup)
    with pytest.raises(DataError, match="Empty corpus"):
        load_squad_paragraphs(_squad(tmp_path / "e.json", []))


def test_tatoeba_synthetic(tmp_path: Path) -> None:
    folder = tmp_path / "tatoeba_laser" / "v1"
    folder.mkdir(parents=True)
    (folder / "tatoeba.xyz-eng.xyz").write_text("eins\u2028zwei\ndrei\n", encoding="utf-8")
    (folder / "tatoeba.xyz-eng.eng").write_text("one two\r\nthree\n", encoding="utf-8")
    b = load_tatoeba("xyz", tmp_path)
    assert b.sentences == ["eins\u2028zwei", "drei"] and b.english == ["one two", "three"]
    (folder / "tatoeba.xyz-eng.eng").write_text("one\n", encoding="utf-8")
    with pytest.raises(DataError, match="2 lines .* but 1"):
        load_tatoeba("xyz", tmp_path)


# --- mock ------------------------------------------------------------------------------


def test_mock_set() -> None:
    m = mock_retrieval_set()
    assert m == mock_retrieval_set() and m.revision == mock_retrieval_set().revision
    assert set(m.queries) == set(m.qrels) and m.answers is not None and set(m.answers) == set(m.queries)
    assert all(d in m.corpus for rel in m.qrels.values() for d in rel)
    # an oracle ranking its graded judgements first scores perfectly
    scores = np.array([[m.qrels[q].get(d, -1) for d in m.corpus] for q in m.queries], dtype=np.float32)
    res = retrieval_metrics(m.query_ids, m.doc_ids, m.qrels, scores, (1, 3), ndcg_gain="graded")
    assert res["ndcg@3"] == 1.0 and res["recall@3"] == 1.0
