"""Text corpora for MLM: the shared medical abstracts, the embedded gensim text, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedlab.data.text_corpus import CorpusSpec, load_corpus
from embedlab.errors import DataError


def medical_spec(data_dir: Path, **kw) -> CorpusSpec:
    return CorpusSpec(
        name="medical",
        format="table",
        root=str(data_dir),
        file="medical_abstracts/medical_tc_test.csv",
        text_column="medical_abstract",
        label_column="condition_label",
        label_names_file="medical_abstracts/medical_tc_labels.csv",
        **kw,
    )


def test_medical_abstracts(data_dir: Path) -> None:
    corpus = load_corpus(medical_spec(data_dir))
    assert len(corpus) == 2888
    assert corpus.label_set == [
        "cardiovascular diseases",
        "digestive system diseases",
        "general pathological conditions",
        "neoplasms",
        "nervous system diseases",
    ]
    assert set(corpus.train_idx).isdisjoint(corpus.heldout_idx)
    assert len(corpus.train_idx) + len(corpus.heldout_idx) == 2888
    assert set(corpus.heldout_labels or []) == set(corpus.label_set)  # stratified: every class held out
    assert corpus.fingerprint() == load_corpus(medical_spec(data_dir)).fingerprint()
    assert corpus.fingerprint() != load_corpus(medical_spec(data_dir, split_seed=1)).fingerprint()


def test_embedded_default_is_gensim_lee_background() -> None:
    corpus = load_corpus(CorpusSpec(name="lee"))
    assert len(corpus) == 300 and corpus.labels is None
    assert all("\ufffd" not in t for t in corpus.texts)  # decoded as Latin-1, nothing replaced
    assert len(corpus.heldout_idx) == 30


def test_embedded_wiki_paragraphs() -> None:
    corpus = load_corpus(CorpusSpec(name="wiki", format="wiki"))
    assert len(corpus) > 1000
    assert not any(t.upper().startswith("#REDIRECT") or "[[" in t for t in corpus.texts)


def test_table_formats_skip_and_count_empty_texts(tmp_path: Path) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("body,topic\nfirst text,a\n  ,b\nthird text,b\nfourth text,a\n", encoding="utf-8")
    corpus = load_corpus(CorpusSpec(name="t", format="table", file=str(csv_file), text_column="body",
                                    label_column="topic", val_fraction=0.5))  # fmt: skip
    assert corpus.n_skipped_empty == 1 and len(corpus) == 3 and corpus.label_set == ["a", "b"]
    with pytest.raises(DataError, match="empty"):
        load_corpus(
            CorpusSpec(name="t", format="table", file=str(csv_file), text_column="body", on_empty="error")
        )
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"doc {i}"}) for i in range(10)), encoding="utf-8")
    assert len(load_corpus(CorpusSpec(name="j", format="table", file=str(jsonl)))) == 10
    lines = tmp_path / "t.txt"
    lines.write_text("one\n\ntwo\nthree\n", encoding="utf-8")
    corpus = load_corpus(CorpusSpec(name="l", format="lines", file=str(lines)))
    assert len(corpus) == 3 and corpus.n_skipped_empty == 1


def test_max_texts_is_a_seeded_subsample() -> None:
    a = load_corpus(CorpusSpec(name="lee", max_texts=50))
    b = load_corpus(CorpusSpec(name="lee", max_texts=50))
    assert len(a) == 50 and a.texts == b.texts


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(format="table", file="/nonexistent/x.csv"), "not found"),
        (dict(format="table", file=None), "names no file"),
        (dict(format="table", text_column="nope"), "column 'nope'"),
        (dict(format="table", label_column="nope"), "column 'nope'"),
        (dict(format="table", val_fraction=1.0), "val_fraction"),
        (dict(format="jsonl_missing_column"), "column 'missing'"),
        (dict(format="bogus"), "Unknown corpus format"),
    ],
)
def test_bad_inputs_raise_data_error(tmp_path: Path, spec: dict, message: str) -> None:
    csv_file = tmp_path / "ok.csv"
    csv_file.write_text("text,label\nhello there,a\ngeneral kenobi,b\n", encoding="utf-8")
    if spec.get("format") == "jsonl_missing_column":
        jsonl = tmp_path / "x.jsonl"
        jsonl.write_text('{"text": "a"}\n', encoding="utf-8")
        spec = dict(format="table", file=str(jsonl), text_column="missing")
    spec = {"file": str(csv_file), **spec}
    with pytest.raises(DataError, match=message):
        load_corpus(CorpusSpec(name="bad", **spec))
