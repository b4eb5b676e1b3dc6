"""Hostile input fails with an error that says what was wrong and how to fix it, or runs.

Already covered elsewhere (not repeated here): empty and whitespace-only STS texts, NaN,
non-numeric and out-of-range STS scores, invalid UTF-8 in CSV files, control characters
and a 100k-character text *loading* (tests/data/test_sts_data.py); duplicated BEIR
document and query ids (tests/data/test_retrieval_data.py); a missing hub model, a missing
model folder and an unreadable config.json (tests/models/test_resolve.py). Here: those
texts through encoding and a whole training run, hostile BEIR files, data configs that
point outside the data dir, huge or fractional batch sizes, a non-existent saved model
and truncated weights.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedlab.errors import ConfigError, DataError, ModelUnavailableError

LONG = "word " * 20_000  # 100,000 characters
HOSTILE_TEXTS = [
    LONG,
    "tab\tbell\x07nul\x00escape\x1b[31m",  # control characters
    "\x00\x01\x02\x1f",  # nothing but control characters
    "\u200b\u200b\u200b",  # zero-width spaces: no tokens once normalised
    "emoji \U0001f600 and RTL \u202ehidden\u202c",
    "a",
]


def test_hostile_texts_encode_to_finite_vectors_and_long_ones_are_counted(tiny_model_dirs) -> None:
    import time

    from sentence_transformers import SentenceTransformer

    from embedlab.encode.encoder import reference_encode

    model = SentenceTransformer(str(tiny_model_dirs["bert"]), device="cpu")
    model.max_seq_length = 64
    start = time.perf_counter()
    emb, stats = reference_encode(model, HOSTILE_TEXTS, batch_size=4)
    assert time.perf_counter() - start < 30  # tokenising 100k characters is not quadratic
    assert emb.shape == (len(HOSTILE_TEXTS), model.get_sentence_embedding_dimension())
    assert np.isfinite(emb).all()
    assert stats.n_truncated >= 1 and stats.max_tokens > 64  # the long text is truncated, and counted


def _write_pairs(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    path.write_text(
        "".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in rows)
    )
    return path


def test_training_on_hostile_texts_runs(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import train

    rows = [
        (t, HOSTILE_TEXTS[(i + 1) % len(HOSTILE_TEXTS)], float(i % 6))
        for i, t in enumerate(HOSTILE_TEXTS * 4)
    ]
    data = _write_pairs(tmp_path / "pairs.jsonl", rows)
    metrics, _ = train(
        make_cfg("model=tiny_bert", "data=sts_file", f"data.files.all={data}", "data.score_range=[0,5]",
                 "logger=none", "debug=fast", "save_model=false", "embedding_cache=false")
    )  # fmt: skip
    assert metrics["val/custom/n_pairs"] > 0 and metrics["test/custom/n_pairs"] > 0
    assert all(np.isfinite(v) for v in metrics.values())  # no NaN embedding reached a score
    assert metrics["val/custom/n_truncated_texts"] + metrics["test/custom/n_truncated_texts"] >= 1


@pytest.mark.parametrize(
    ("line", "message"),
    [('{"sentence1": "a", "sentence2": "b", "score": NaN}', "score is nan"),
     ('{"sentence1": "a", "sentence2": "b", "score": Infinity}', "score is inf"),
     ('{"sentence1": "a", "sentence2": "b", "score": -0.5}', r"score -0.5 outside the declared range")],
)  # fmt: skip
def test_non_finite_scores_in_jsonl(tmp_path: Path, line: str, message: str) -> None:
    from embedlab.data.sts import STSSpec, load_sts

    good = "".join(
        json.dumps({"sentence1": f"s{i}", "sentence2": f"t{i}", "score": 1.0}) + "\n" for i in range(30)
    )
    path = tmp_path / "pairs.jsonl"
    path.write_text(good + line + "\n")
    spec = STSSpec(name="x", format="table", score_range=(0.0, 5.0), files={"all": str(path)},
                   columns={"sentence1": "sentence1", "sentence2": "sentence2", "score": "score"})  # fmt: skip
    with pytest.raises(DataError, match=message):
        load_sts(spec)


# --- hostile BEIR folders ---------------------------------------------------------------------

DOCS = b'{"_id": "a", "text": "body"}\n{"_id": "b", "text": "other"}\n'
QUERIES = b'{"_id": "1", "text": "q one"}\n'


def _beir(folder: Path, corpus: bytes = DOCS, queries: bytes = QUERIES, qrels: bytes = b"1\ta\t1\n") -> Path:
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wb") as fh:
        fh.write(corpus)
    (folder / "queries.jsonl").write_bytes(queries)
    (folder / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\n" + qrels)
    return folder


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"corpus": b'{"_id": "a", "text": "b\xff\xfeody"}\n'}, r"corpus.jsonl.gz:1 is not valid UTF-8 \(byte 0xff"),
        ({"queries": b'{"_id": "1", "text": "caf\xe9"}\n'}, r"queries.jsonl:1 is not valid UTF-8"),
        ({"qrels": b"1\ta\t\xff\n"}, r"test.tsv is not valid UTF-8"),
        ({"corpus": b'{"text": "no id"}\n'}, r"corpus.jsonl.gz:1 has no '_id' field"),
        ({"queries": b'{"_id": "1"}\n'}, r"queries.jsonl:1 has no 'text' field"),
        ({"corpus": b"[1, 2]\n"}, r"is a JSON list, expected an object per line"),
        ({"queries": b'{"_id": "1", "text": " \\t "}\n'}, r"Query '1' .* is empty or whitespace only"),
        ({"qrels": b"1\ta\tnan\n"}, r"test.tsv:2: relevance 'nan' is not an integer"),
        ({"qrels": b"1\ta\t0.5\n"}, r"relevance '0.5' is not an integer"),
        ({"corpus": DOCS + b'{"_id": "a", "text": "again"}\n'}, r"Duplicate document id 'a'"),
    ],
    ids=["corpus-utf8", "query-utf8", "qrels-utf8", "no-id", "no-text", "not-object", "empty-query",
         "nan-relevance", "fractional-relevance", "duplicate-id"],
)  # fmt: skip
def test_hostile_beir_files(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    from embedlab.data.retrieval import load_beir

    with pytest.raises(DataError, match=message):
        load_beir(_beir(tmp_path / "set", **files))


# --- configs ----------------------------------------------------------------------------------


def test_data_dir_pointing_elsewhere_says_how_to_fix(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate, train

    elsewhere = tmp_path / "not_the_data"
    elsewhere.mkdir()
    with pytest.raises(DataError, match=r"(?s)stsb.*not found.*EMBEDLAB_DATA"):
        train(
            make_cfg(
                "model=tiny_bert", "data=stsb", "logger=none", "debug=fast", f"paths.data_dir={elsewhere}"
            )
        )
    with pytest.raises(DataError, match=r"BEIR (folder|corpus) not found.*EMBEDLAB_DATA"):
        evaluate(
            make_cfg(
                "model=tiny_bert", "data=scifact", "logger=none", f"data.root={elsewhere}", task="evaluate"
            )
        )


@pytest.mark.parametrize(
    ("target", "message"),
    [("folder", r"is not a file: .*data.files must name CSV, TSV or JSONL"),
     ("header_only", r"split 'train' holds no pairs: its file has no data rows"),
     ("binary", r"is not valid UTF-8")],
)  # fmt: skip
def test_sts_file_pointing_at_the_wrong_thing(make_cfg, tmp_path: Path, target: str, message: str) -> None:
    from embedlab.jobs import train

    path = {"folder": tmp_path, "header_only": tmp_path / "h.csv", "binary": tmp_path / "b.csv"}[target]
    (tmp_path / "h.csv").write_text("sentence1,sentence2,score\n")
    (tmp_path / "b.csv").write_bytes(bytes(range(128, 256)) * 3)
    cfg = make_cfg("model=tiny_bert", "data=sts_file", f"data.files.all={path}", "data.score_range=[0,5]",
                   "logger=none", "debug=fast")  # fmt: skip
    with pytest.raises(DataError, match=message):
        train(cfg)


@pytest.mark.parametrize("override", ["data.batch_size=1000000000", "data.eval_batch_size=99999999999",
                                      "data.batch_size=2.5", "data.batch_size=0", "data.eval_batch_size=-3"])  # fmt: skip
def test_huge_or_invalid_batch_size_is_refused_before_loading(make_cfg, override: str) -> None:
    from embedlab.config import check_config

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}=.*integer from 1 to 65536"):
        check_config(make_cfg("model=tiny_bert", "data=lee", "logger=none", override))


def test_non_existent_saved_model(make_cfg, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate

    cfg = make_cfg("model=saved", f"model.name_or_path={tmp_path / 'no_such_run' / 'model'}", "data=lee",
                   "logger=none", "debug=fast", task="evaluate")  # fmt: skip
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        evaluate(cfg)


def test_truncated_weights_are_a_clear_error(make_cfg, tiny_model_dirs, tmp_path: Path) -> None:
    from embedlab.jobs import evaluate
    from embedlab.models.encoder import EncoderSpec, build_encoder

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dirs["bert"], broken)
    weights = next(broken.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])  # a download or copy cut short
    with pytest.raises(ModelUnavailableError, match=r"could not be loaded \(SafetensorError.*re-download"):
        build_encoder(EncoderSpec(name="broken", name_or_path=str(broken)))
    cfg = make_cfg("model=saved", f"model.name_or_path={broken}", "data=lee", "logger=none", "debug=fast",
                   task="evaluate")  # fmt: skip
    with pytest.raises(ModelUnavailableError, match=r"Saved model .* could not be loaded \(SafetensorError"):
        evaluate(cfg)
