"""STS (scored sentence pairs): a declarative spec, a reader per source format, validation.

Formats: ``stsb_tsv`` (the STS Benchmark release: no header, no quoting, score in column 4,
sentences in 5 and 6), ``table`` (CSV / TSV / JSONL with a column mapping), ``lee`` (gensim's
Lee ratings, offline), ``hub`` (a Hugging Face dataset). Files named per split are read whole (only
``test``: an evaluation set); one ``all`` file is split with ``split_seed`` (a zero fraction: no such split).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from embedlab.data.files import data_file, seeded_subsample, table_rows
from embedlab.errors import DataError
from embedlab.net import hub_reachable
from embedlab.resources import gensim_test_file

log = logging.getLogger(__name__)

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
SourceFormat = Literal["stsb_tsv", "table", "lee", "hub"]


@dataclass(frozen=True)
class STSSpec:
    """Where an STS set lives and how to read it (a Hydra `data/` config maps onto this)."""

    name: str
    format: SourceFormat
    score_range: tuple[float, float]
    root: str | None = None  # folder holding `files` (relative names resolve against it)
    files: Mapping[str, str] = field(default_factory=dict)  # split -> file; one "all" file is split
    columns: Mapping[str, str | int] = field(
        default_factory=lambda: {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score"}
    )
    delimiter: str | None = None  # table files: None = by extension (.csv ",", .tsv "\t")
    has_header: bool = True
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 42
    hub_id: str | None = None
    hub_revision: str | None = None
    on_invalid: Literal["error", "drop"] = "error"
    max_pairs_per_split: int | None = None  # for quick runs; a seeded subsample


@dataclass(frozen=True)
class PairSplit:
    """Validated pairs of one split. ``scores`` are in the spec's original range."""

    sentence1: tuple[str, ...]
    sentence2: tuple[str, ...]
    scores: tuple[float, ...]
    score_range: tuple[float, float]

    def __len__(self) -> int:
        return len(self.scores)

    def normalized_scores(self) -> list[float]:
        """Scores rescaled to [0, 1], the target of the cosine-similarity loss."""
        lo, hi = self.score_range
        return [(s - lo) / (hi - lo) for s in self.scores]

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for a, b, s in zip(self.sentence1, self.sentence2, self.scores, strict=True):
            digest.update(f"{a}\t{b}\t{s!r}\n".encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class STSData:
    name: str
    splits: Mapping[str, PairSplit]
    dropped: Mapping[str, int]  # split -> invalid rows dropped (on_invalid="drop")

    def fingerprint(self) -> str:
        joined = "|".join(f"{k}:{v.fingerprint()}" for k, v in sorted(self.splits.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


Row = tuple[str, str, float, str]  # sentence1, sentence2, score, where (file:line)


def _to_float(value: object, where: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{where}: score {value!r} is not a number.") from None


def _read_file(spec: STSSpec, name: str) -> list[Row]:
    """A CSV / TSV / JSONL table, or the STS Benchmark release (``stsb_tsv``): tab-separated, no header,
    no quoting (its sentences hold unbalanced quotes), score in column 4, sentences in 5 and 6."""
    hint = "data.files must name CSV, TSV or JSONL files (or data.lang another language) in the data folder"
    path = data_file(spec.root, name, f"Data file for '{spec.name}'", f"{hint}, or use data=lee (offline).")
    cols = [spec.columns[k] for k in ("sentence1", "sentence2", "score")]
    opts = {"delimiter": spec.delimiter, "has_header": spec.has_header}
    if spec.format == "stsb_tsv":
        cols, opts = [5, 6, 4], {"delimiter": "\t", "has_header": False, "quoting": csv.QUOTE_NONE}
    fix = "Fix: set data.columns.<sentence1|sentence2|score> to one of them."
    rows = table_rows(path, cols, fix, **opts)
    return [(s1, s2, _to_float(score, where), where) for (s1, s2, score), where in rows]


def _read_hub(spec: STSSpec, split: str) -> list[Row]:
    from datasets import load_dataset

    try:
        ds = load_dataset(spec.hub_id, split=split, revision=spec.hub_revision)
    except Exception as exc:  # offline, or a wrong id / split
        ok, reason = hub_reachable()
        raise DataError(
            f"Could not load '{spec.hub_id}' split '{split}' from the hub"
            f"{'' if ok else ' (' + reason + ')'}: {exc.__class__.__name__}: {str(exc)[:200]}. "
            f"Fix: use a local copy (data=stsb with EMBEDLAB_DATA set) or check the dataset id."
        ) from exc
    s1, s2, score = (spec.columns[k] for k in ("sentence1", "sentence2", "score"))
    return [(r[s1], r[s2], float(r[score]), f"{spec.hub_id}[{split}]:{i}") for i, r in enumerate(ds)]


def _invalid_reason(row: Row, score_range: tuple[float, float]) -> str | None:
    s1, s2, score, _ = row
    lo, hi = score_range
    for name, text in (("sentence1", s1), ("sentence2", s2)):
        if not isinstance(text, str):
            return f"{name} is not text ({type(text).__name__})"
        if not text.strip():
            return f"{name} is empty or whitespace"
    if math.isnan(score) or math.isinf(score):
        return f"score is {score}"
    if not lo <= score <= hi:
        return f"score {score} outside the declared range [{lo}, {hi}]"
    return None


def validate_rows(rows: list[Row], spec: STSSpec, split: str) -> tuple[list[Row], int]:
    """Check every row; raise listing the bad ones, or drop and count them."""
    bad = [(row[3], reason) for row in rows if (reason := _invalid_reason(row, spec.score_range))]
    if not rows:
        raise DataError(
            f"'{spec.name}' split '{split}' holds no pairs: its file has no data rows (after the header, if "
            f"data.has_header), or data.split_fractions / data.max_pairs_per_split leave it none."
        )
    if bad and spec.on_invalid == "error":
        shown = "; ".join(f"{where}: {why}" for where, why in bad[:5])
        raise DataError(
            f"'{spec.name}' split '{split}': {len(bad)} of {len(rows)} pairs are invalid ({shown}"
            f"{'; ...' if len(bad) > 5 else ''}). Fix the file, correct data.score_range, or set "
            f"data.on_invalid=drop to skip them (they are counted in the results)."
        )
    if bad:
        log.warning("'%s' %s: dropped %d invalid pairs (first: %s)", spec.name, split, len(bad), bad[0])
        bad_where = {where for where, _ in bad}
        rows = [r for r in rows if r[3] not in bad_where]
    return rows, len(bad)


def _seeded_split(rows: list[Row], fractions: Sequence[float], seed: int) -> dict[str, list[Row]]:
    """Shuffle with ``seed`` and cut train / validation / test; a split whose fraction is 0 is absent
    (``[0, 0, 1]``: every row is test)."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise DataError(f"split_fractions must be three non-negative numbers summing to 1, got {fractions}.")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_train, n_val = round(fractions[0] * len(rows)), round(fractions[1] * len(rows))
    bounds = (0, n_train, n_train + n_val, len(rows))
    cuts = zip(SPLITS, fractions, bounds, bounds[1:], strict=False)
    return {k: [rows[i] for i in sorted(order[a:b])] for k, f, a, b in cuts if f > 0}


def lee_pairs() -> list[Row]:
    """The 1,225 pairs of gensim's 50 Lee news documents (Lee, Pincombe and Welsh, 2005) with the
    judges' mean similarity in [0, 1] (upper triangle of ``similarities0-1.txt``): offline STS."""
    docs = [d for d in gensim_test_file("lee.cor").read_text(encoding="latin-1").splitlines() if d.strip()]
    rows = gensim_test_file("similarities0-1.txt").read_text(encoding="utf-8").splitlines()
    matrix = [[float(x) for x in row.split()] for row in rows if row.strip()]
    if len(docs) != 50 or len(matrix) != 50:
        raise DataError(f"Expected 50 Lee documents and a 50x50 matrix, got {len(docs)} and {len(matrix)}.")
    pairs = [(i, j) for i in range(50) for j in range(i + 1, 50)]
    return [(docs[i], docs[j], matrix[i][j], f"lee:{n}") for n, (i, j) in enumerate(pairs)]


def _raw_splits(spec: STSSpec) -> dict[str, list[Row]]:
    if spec.format == "lee":
        return _seeded_split(lee_pairs(), spec.split_fractions, spec.split_seed)
    if spec.format == "hub":
        if not spec.hub_id:
            raise DataError(f"data '{spec.name}' has format=hub but no hub_id.")
        return {split: _read_hub(spec, spec.files.get(split, split)) for split in SPLITS}
    if spec.format not in ("stsb_tsv", "table"):
        raise DataError(f"Unknown data format '{spec.format}'. Choose one of {list(get_args(SourceFormat))}.")
    files = {k: v for k, v in spec.files.items() if v}  # sts_file.yaml declares every key, unset ones null
    if not files:
        raise DataError(
            f"data '{spec.name}' names no files. Set data.files.test=<file> (score every row), "
            f"data.files.{{train,validation}}=<file> to fine-tune, or data.files.all=<file> (split at random)."
        )
    unknown = set(files) - {"all", *SPLITS}
    if unknown:
        raise DataError(
            f"data.files has unknown splits {sorted(unknown)}; use train, validation, test or all."
        )
    if "all" in files and len(files) > 1:
        raise DataError(
            f"data.files names 'all' and {sorted(set(files) - {'all'})}: give one file to split at random "
            f"(files.all) or one file per split (files.train / validation / test), not both."
        )
    if "all" in files:
        return _seeded_split(_read_file(spec, files["all"]), spec.split_fractions, spec.split_seed)
    return {split: _read_file(spec, files[split]) for split in SPLITS if split in files}


def load_sts(spec: STSSpec, splits: Sequence[str] | None = None) -> STSData:
    """Read, validate and (if needed) split an STS set: ``splits``, else every split it holds."""
    lo, hi = spec.score_range
    if not lo < hi:
        raise DataError(f"data.score_range must be [low, high] with low < high, got {spec.score_range}.")
    raw = _raw_splits(spec)
    splits = [s for s in SPLITS if s in raw] if splits is None else splits
    missing = [s for s in splits if s not in raw]
    if missing:
        raise DataError(
            f"'{spec.name}' has no split(s) {missing}; it has {sorted(raw)}. Fix: name a file for each "
            f"(data.files.train=..., data.files.validation=...) or one data.files.all=... to split at random."
        )
    out: dict[str, PairSplit] = {}
    dropped: dict[str, int] = {}
    for split in splits:
        rows, dropped[split] = validate_rows(raw[split], spec, split)
        rows = seeded_subsample(rows, spec.max_pairs_per_split, spec.split_seed)
        out[split] = PairSplit(*(tuple(r[k] for r in rows) for k in range(3)), spec.score_range)
    return STSData(spec.name, out, dropped)


def stsb_spec(root: str | Path, *, max_pairs: int | None = None, seed: int = 42) -> STSSpec:
    """The STS Benchmark release under ``root`` (the same reading as `configs/data/stsb.yaml`)."""
    files = {"train": "sts-train.csv", "validation": "sts-dev.csv", "test": "sts-test.csv"}
    opts = {"root": str(root), "files": files, "split_seed": seed, "max_pairs_per_split": max_pairs}
    return STSSpec(
        "stsb", "stsb_tsv", (0.0, 5.0), columns={"sentence1": 5, "sentence2": 6, "score": 4}, **opts
    )
