"""STS loaders: real sets, user files, seeded splits, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedlab.data.sts import STSSpec, load_sts
from embedlab.errors import DataError


def table_spec(path: Path, **kw) -> STSSpec:
    return STSSpec(name="mine", format="table", score_range=(0.0, 5.0), files={"all": str(path)}, **kw)


def write_csv(
    path: Path, rows: list[tuple[str, str, str]], header: str = "sentence1,sentence2,score"
) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header.split(","))
        w.writerows(rows)
    return path


GOOD = [(f"a sentence number {i}", f"another sentence {i}", str(i % 6)) for i in range(40)]


def test_stsb_original_release(data_dir: Path) -> None:
    spec = STSSpec(
        name="stsb",
        format="stsb_tsv",
        score_range=(0.0, 5.0),
        root=str(data_dir / "stsb"),
        files={"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"},
    )
    data = load_sts(spec)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 5749, "validation": 1500, "test": 1379}
    test = data.splits["test"]
    assert test.sentence1[0] == "A girl is styling her hair." and test.scores[0] == 2.5
    assert all(0 <= s <= 5 for s in test.scores)


def test_lee_embedded_default() -> None:
    data = load_sts(
        STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), split_fractions=(0.7, 0.15, 0.15))
    )
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sum(sizes.values()) == 1225 and sizes["train"] == 858
    pairs = [set(zip(v.sentence1, v.sentence2, strict=True)) for v in data.splits.values()]
    assert not (pairs[0] & pairs[1] or pairs[0] & pairs[2] or pairs[1] & pairs[2])  # disjoint
    again = load_sts(
        STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), split_fractions=(0.7, 0.15, 0.15))
    )
    assert again.fingerprint() == data.fingerprint()  # seeded: the same split every time
    other = load_sts(STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), split_seed=7))
    assert other.fingerprint() != data.fingerprint()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_user_file_formats(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"pairs.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps({"a": a, "b": b, "y": float(s)}) + "\n" for a, b, s in GOOD))
    else:
        sep = "," if fmt == "csv" else "\t"
        path.write_text("a,b,y\n".replace(",", sep) + "".join(f"{a}{sep}{b}{sep}{s}\n" for a, b, s in GOOD))
    data = load_sts(table_spec(path, columns={"sentence1": "a", "sentence2": "b", "score": "y"}))
    assert sum(len(v) for v in data.splits.values()) == 40


def test_user_files_per_split_and_indices(tmp_path: Path) -> None:
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.tsv").write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in GOOD[:10]))
    spec = STSSpec(
        name="mine",
        format="table",
        score_range=(0.0, 5.0),
        root=str(tmp_path),
        has_header=False,
        files={s: f"{s}.tsv" for s in ("train", "validation", "test")},
        columns={"sentence1": 0, "sentence2": 1, "score": 2},
    )
    assert [len(v) for v in load_sts(spec).splits.values()] == [10, 10, 10]


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (("", "fine", "3"), "sentence1 is empty"),
        (("fine", "   \t", "3"), "sentence2 is empty or whitespace"),
        (("fine", "fine", "nan"), "score is nan"),
        (("fine", "fine", "7"), r"score 7.0 outside the declared range \[0.0, 5.0\]"),
        (("fine", "fine", "high"), "is not a number"),
    ],
)
def test_invalid_rows_are_named(tmp_path: Path, bad_row, message: str) -> None:
    path = write_csv(tmp_path / "pairs.csv", GOOD + [bad_row])
    with pytest.raises(DataError, match=message):
        load_sts(table_spec(path))


def test_invalid_rows_can_be_dropped_and_counted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "pairs.csv", GOOD + [("", "x", "1"), ("x", "y", "9")])
    spec = table_spec(path, on_invalid="drop", split_fractions=(1.0, 0.0, 0.0))
    assert set(load_sts(spec).splits) == {"train"}  # a zero fraction drops that split
    data = load_sts(table_spec(path, on_invalid="drop"))
    assert sum(data.dropped.values()) == 2 and sum(len(v) for v in data.splits.values()) == 40


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="(?s)not found.*working directory"):
        load_sts(table_spec(tmp_path / "nope.csv"))


def test_missing_column_lists_available(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "pairs.csv", GOOD)
    with pytest.raises(DataError, match=r"column 'text_a' not found.*sentence1"):
        load_sts(
            table_spec(path, columns={"sentence1": "text_a", "sentence2": "sentence2", "score": "score"})
        )


def test_bad_score_range_and_fractions(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "pairs.csv", GOOD)
    with pytest.raises(DataError, match="low < high"):
        load_sts(STSSpec(name="x", format="table", score_range=(5.0, 0.0), files={"all": str(path)}))
    with pytest.raises(DataError, match="summing to 1"):
        load_sts(table_spec(path, split_fractions=(0.5, 0.1, 0.1)))


def test_hostile_texts_survive(tmp_path: Path) -> None:
    """Control characters and a 100k-character text load unchanged (truncation is the encoder's job)."""
    long = "word " * 20_000
    rows = GOOD + [("tab\tand\x07bell", long, "2")]
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(json.dumps({"sentence1": a, "sentence2": b, "score": float(s)}) + "\n" for a, b, s in rows)
    )
    data = load_sts(table_spec(path, split_fractions=(0.5, 0.25, 0.25)))
    texts = [t for v in data.splits.values() for t in v.sentence2]
    assert long in texts


def test_invalid_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"sentence1,sentence2,score\n\xff\xfe bad,ok,1\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_sts(table_spec(path))
