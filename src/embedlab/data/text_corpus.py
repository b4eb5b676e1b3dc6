"""Plain-text corpora (with optional labels) for continued masked-LM training: a ``CorpusSpec``
(``table`` CSV / TSV / JSONL, ``lines``, or gensim's offline ``lee`` / ``wiki`` texts) becomes a
``TextCorpus`` with a seeded, stratified held-out split; ``mix_replay`` adds general text against
forgetting. Empty texts are skipped and counted: a shrinking corpus breaks before/after numbers.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from embedlab.data.files import data_file, decoding, seeded_subsample, table_rows
from embedlab.data.sts import load_sts, stsb_spec
from embedlab.errors import DataError
from embedlab.resources import gensim_test_file

log = logging.getLogger(__name__)

CorpusFormat = Literal["table", "lines", "lee", "wiki"]
LEE_FILE = "lee_background.cor"  # 300 Australian news texts, Latin-1
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


@dataclass(frozen=True)
class CorpusSpec:
    """Where a text corpus lives and how to read it (a Hydra `data/` config maps onto this)."""

    name: str
    format: CorpusFormat = "lee"
    root: str | None = None  # folder that a relative `file` resolves against
    file: str | None = None
    text_column: str | int = "text"  # header name, or a 0-based index for has_header=False
    label_column: str | int | None = None
    label_names_file: str | None = None  # CSV "id,name": maps label ids to readable names
    delimiter: str | None = None  # None: by extension (.tsv tab, else comma)
    has_header: bool = True
    encoding: str = "utf-8"
    on_empty: Literal["skip", "error"] = "skip"
    val_fraction: float = 0.1
    split_seed: int = 42
    max_texts: int | None = None  # a seeded subsample, for quick runs
    min_words: int = 20  # wiki only: shorter paragraphs (headings, captions) are dropped


@dataclass(frozen=True)
class TextCorpus:
    """Texts (and labels when the source has them) with a seeded train / held-out split."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[str, ...] | None
    train_idx: tuple[int, ...]
    heldout_idx: tuple[int, ...]
    n_skipped_empty: int
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def train_texts(self) -> list[str]:
        return [self.texts[i] for i in self.train_idx]

    @property
    def heldout_texts(self) -> list[str]:
        return [self.texts[i] for i in self.heldout_idx]

    @property
    def heldout_labels(self) -> list[str] | None:
        return None if self.labels is None else [self.labels[i] for i in self.heldout_idx]

    @property
    def label_set(self) -> list[str]:
        return sorted(set(self.labels)) if self.labels is not None else []

    def fingerprint(self) -> str:
        """sha256 over texts, labels and held-out membership: changes if any of them does."""
        digest = hashlib.sha256()
        held = set(self.heldout_idx)
        labels = self.labels or ("",) * len(self.texts)
        for i, (text, label) in enumerate(zip(self.texts, labels, strict=True)):
            digest.update(f"{int(i in held)}\t{label}\t{text}\n".encode())
        return digest.hexdigest()[:16]

    def meta(self) -> dict[str, object]:
        """What results.json records about the data."""
        return {
            "name": self.name,
            "source": self.source,
            "fingerprint": self.fingerprint(),
            "n_texts": len(self.texts),
            "n_train": len(self.train_idx),
            "n_heldout": len(self.heldout_idx),
            "n_skipped_empty": self.n_skipped_empty,
            "labels": dict(sorted(Counter(self.labels or ()).items())),
        }


Record = tuple[str, str | None, str]  # text, label, where (file:line)


def _resolve(spec: CorpusSpec, name: str | None) -> Path:
    if not name:
        raise DataError(f"data '{spec.name}' (format={spec.format}) names no file. Set data.file=...")
    fix = "give data.file as an absolute path, or use data.format=lee for the corpus that ships with gensim."
    return data_file(spec.root, name, f"Text corpus file for '{spec.name}'", fix)


def _read_table(spec: CorpusSpec) -> tuple[list[Record], str]:
    path = _resolve(spec, spec.file)
    keys = [spec.text_column] if spec.label_column is None else [spec.text_column, spec.label_column]
    fix = "Fix: set data.text_column / data.label_column to one of them."
    opts = {"delimiter": spec.delimiter, "has_header": spec.has_header, "encoding": spec.encoding}
    records: list[Record] = []
    for (text, *label), where in table_rows(path, keys, fix, **opts):
        value = label[0] if label else None
        records.append(("" if text is None else str(text), None if value is None else str(value), where))
    return records, str(path)


def _read_lines(path: Path, encoding: str) -> list[Record]:
    with decoding(path, encoding):
        lines = path.read_text(encoding=encoding).splitlines()
    return [(line, None, f"{path.name}:{i}") for i, line in enumerate(lines, 1)]


def _read_wiki(min_words: int) -> list[Record]:
    """Paragraphs of the Wikipedia pages that gensim ships, without markup or redirects."""
    import bz2

    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    records: list[Record] = []
    with bz2.open(gensim_test_file(WIKI_FILE), "rb") as fh:
        for title, raw, _ in extract_pages(fh, filter_namespaces=("0",)):
            if raw.lstrip().upper().startswith("#REDIRECT"):
                continue
            clean = filter_wiki(raw).replace("'''", "").replace("''", "")
            for j, para in enumerate(re.split(r"\n\s*\n", clean)):
                para = " ".join(para.split())
                if len(para.split()) >= min_words and not para.startswith(("=", "*", "|", "!")):
                    records.append((para, None, f"wiki:{title}#{j}"))
    return records


CORPUS_FORMATS: dict[str, Callable[[CorpusSpec], tuple[list[Record], str]]] = {  # -> (records, source)
    "table": _read_table,
    "lines": lambda spec: (_read_lines(path := _resolve(spec, spec.file), spec.encoding), str(path)),
    "lee": lambda _: (_read_lines(gensim_test_file(LEE_FILE), "latin-1"), f"gensim:{LEE_FILE}"),
    "wiki": lambda spec: (_read_wiki(spec.min_words), f"gensim:{WIKI_FILE}"),
}


def _label_names(spec: CorpusSpec) -> dict[str, str]:
    if not spec.label_names_file:
        return {}
    fix = "Fix: give two columns (label id, label name) on every line."
    rows = [
        (i.strip(), n.strip())
        for (i, n), _ in table_rows(_resolve(spec, spec.label_names_file), [0, 1], fix, has_header=False)
    ]
    return dict(rows[1:] if rows and not rows[0][0].lstrip("-").isdigit() else rows)  # [1:]: a header line


def _split(
    labels: Sequence[str] | None, n: int, val_fraction: float, seed: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Seeded held-out split, stratified by label so that every class is held out (the t-SNE
    plot and a k-NN probe of the held-out embeddings need that)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}.")
    if n < 2:
        raise DataError(f"A corpus needs at least 2 texts to split off a held-out set, got {n}.")
    rng = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        groups[labels[i] if labels is not None else ""].append(i)
    held: list[int] = []
    for key in sorted(groups):
        members = groups[key]
        rng.shuffle(members)
        k = round(val_fraction * len(members))
        held.extend(members[: max(1, k) if len(members) > 1 else 0])
    held_set = set(held)
    if len(held_set) == n:  # tiny corpora: keep something to train on
        held_set.discard(max(held_set))
    train = tuple(i for i in range(n) if i not in held_set)
    return train, tuple(sorted(held_set))


def load_corpus(spec: CorpusSpec) -> TextCorpus:
    """Read, clean, subsample and split a corpus as ``spec`` says."""
    if spec.format not in CORPUS_FORMATS:
        raise DataError(f"Unknown corpus format '{spec.format}'. Choose one of {tuple(CORPUS_FORMATS)}.")
    records, source = CORPUS_FORMATS[spec.format](spec)
    empty = [where for text, _, where in records if not text.strip()]
    if empty and spec.on_empty == "error":
        raise DataError(
            f"'{spec.name}': {len(empty)} of {len(records)} texts are empty (first: {', '.join(empty[:5])}). "
            f"Fix the file or set data.on_empty=skip to drop them (they are counted)."
        )
    if empty:
        log.warning("'%s': skipped %d empty texts (first: %s)", spec.name, len(empty), empty[0])
    records = [r for r in records if r[0].strip()]
    if not records:
        raise DataError(f"'{spec.name}' ({source}) holds no non-empty texts.")
    if spec.max_texts is not None and len(records) > spec.max_texts:
        if spec.max_texts < 2:
            raise DataError(f"data.max_texts must be >= 2, got {spec.max_texts}.")
        records = seeded_subsample(records, spec.max_texts, spec.split_seed)
    texts = tuple(" ".join(r[0].split()) for r in records)  # one line per text, as tokenizers see it
    labels: tuple[str, ...] | None = None
    if spec.label_column is not None:
        names = _label_names(spec)
        missing = [r[2] for r in records if r[1] is None or not str(r[1]).strip()]
        if missing:
            raise DataError(f"'{spec.name}': {len(missing)} rows have no label (first: {missing[0]}).")
        labels = tuple(names.get(str(r[1]).strip(), str(r[1]).strip()) for r in records)
    train, held = _split(labels, len(texts), spec.val_fraction, spec.split_seed)
    corpus = TextCorpus(spec.name, texts, labels, train, held, len(empty), source)
    msg = "Corpus '%s' (%s): %d texts, %d train / %d held-out, %d labels, fingerprint %s"
    log.info(
        msg, spec.name, source, len(texts), len(train), len(held), len(corpus.label_set), corpus.fingerprint()
    )
    return corpus


ReplaySource = Literal["stsb", "wiki"]
REPLAY_SOURCES: tuple[str, ...] = ("stsb", "wiki")


@dataclass(frozen=True)
class ReplayMix:
    """Domain training texts with general-domain texts mixed in (rehearsal against forgetting)."""

    texts: tuple[str, ...]  # domain texts first, then the replayed ones (the loader shuffles)
    n_domain: int
    n_replay: int
    source: str

    @property
    def fraction(self) -> float:
        """The share of training texts that are replayed general text."""
        return self.n_replay / max(len(self.texts), 1)


def general_sentences(source: ReplaySource, *, stsb_root: str | Path | None = None) -> tuple[list[str], str]:
    """Distinct general-domain texts to replay (STS-B train sentences or gensim's Wikipedia
    excerpt), in file order, and a description of where they came from."""
    if source == "stsb":
        root = Path(stsb_root).expanduser() if stsb_root else None
        if root is None or not (root / "sts-train.csv").is_file():
            raise DataError(
                f"replay.source=stsb needs the STS Benchmark train file, but {root}/sts-train.csv does "
                f"not exist. Fix: set EMBEDLAB_DATA (or paths.data_dir=...) to the folder holding stsb/, "
                f"or use objective.replay.source=wiki (ships with gensim, works offline)."
            )
        train = load_sts(stsb_spec(root), splits=("train",)).splits["train"]
        texts = list(dict.fromkeys(list(train.sentence1) + list(train.sentence2)))
        return texts, f"{root / 'sts-train.csv'} (sentences of {len(train)} pairs)"
    if source == "wiki":
        return [r[0] for r in _read_wiki(20)], f"gensim:{WIKI_FILE} (paragraphs of >= 20 words)"
    raise DataError(f"Unknown replay source '{source}'. Choose one of {REPLAY_SOURCES}.")


def mix_replay(
    domain: Sequence[str], general: Sequence[str], fraction: float, *, seed: int, source: str = "general"
) -> ReplayMix:
    """Draw round(fraction * n / (1 - fraction)) distinct general texts (seeded) so that they make
    up ``fraction`` of the n domain texts plus them. It counts texts, not (fewer, shorter) tokens."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"replay.fraction must be in [0, 1), got {fraction}.")
    n_replay = round(fraction * len(domain) / (1.0 - fraction))
    pool = [t for t in dict.fromkeys(" ".join(t.split()) for t in general) if t]
    if n_replay > len(pool):
        raise DataError(
            f"replay.fraction={fraction} with {len(domain)} domain texts needs {n_replay} general texts, "
            f"but {source} has only {len(pool)}. Fix: lower replay.fraction or use a larger source."
        )
    replay = random.Random(seed).sample(pool, n_replay)
    mix = ReplayMix(tuple(domain) + tuple(replay), len(domain), n_replay, source)
    msg = "Replay: %d general texts from %s mixed into %d domain texts (%.1f%% of training texts)"
    log.info(msg, n_replay, source, len(domain), 100 * mix.fraction)
    return mix
