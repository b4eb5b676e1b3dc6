"""Retrieval sets (BEIR folders, SQuAD, your question-passage file, a mock set) and Tatoeba bitext as plain dicts.

``revision`` is a content fingerprint (loader, parameters, bytes of every file read), so a results
file records which data produced it. BEIR documents are ``title + " " + text`` (as ST's IR evaluator
example); only queries judged relevant in the split are kept. SQuAD q2q uses question ids as both
query and doc ids: evaluate with ``ignore_identical_ids``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedlab.data.files import data_file, read_jsonl, read_lines, table_rows, under_root
from embedlab.errors import DataError

log = logging.getLogger(__name__)

_FIX = "Fix: set EMBEDLAB_DATA to the shared benchmark data folder, or paths.data_dir in the config."


@dataclass(frozen=True)
class RetrievalSet:
    """Queries, corpus and relevance judgements of one retrieval task."""

    name: str
    corpus: dict[str, str]  # doc id -> text
    queries: dict[str, str]  # query id -> text (only queries with a relevant judgement)
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance (> 0 relevant)
    answers: dict[str, list[str]] | None  # query id -> gold answer strings, for RAG sets
    revision: str  # content fingerprint (see module docstring)
    ignore_identical_ids: bool = False  # evaluate with this: True when query ids are doc ids
    stats: dict[str, int] = field(default_factory=dict)  # what loading dropped or merged

    @property
    def query_ids(self) -> list[str]:
        return list(self.queries)

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)


@dataclass(frozen=True)
class Bitext:
    """Aligned sentence lists: ``sentences[i]`` translates ``english[i]``."""

    lang: str
    sentences: list[str]
    english: list[str]
    revision: str


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The shared data folder: the argument, else $EMBEDLAB_DATA, else ../shared/data."""
    default = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    path = Path(data_dir or os.environ.get("EMBEDLAB_DATA") or default).expanduser()
    if not path.is_dir():
        raise DataError(f"Data folder {path} does not exist. {_FIX}")
    return path


def _find(folder: Path, names: list[str], what: str) -> Path:
    """The first of ``names`` that is a file in ``folder``."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    if len(names) == 1:
        raise DataError(f"{what} not found: {folder / names[0]}. {_FIX}")
    raise DataError(f"{what} not found in {folder} (looked for {', '.join(names)}). {_FIX}")


def _fingerprint(tag: str, params: dict[str, Any], files: list[Path]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([tag, params], sort_keys=True).encode())
    for f in files:
        digest.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _unique_put(target: dict[str, Any], key: str, value: Any, what: str, source: Path) -> None:
    if key in target:
        raise DataError(f"Duplicate {what} id {key!r} in {source}; ids must be unique.")
    target[key] = value


def _read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], int]:
    """query id -> doc id -> grade from a BEIR qrels TSV, and how many lines repeated a judgement."""
    qrels: dict[str, dict[str, int]] = {}
    n_dup = 0
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise DataError(f"{path}:{n}: expected 3 tab-separated columns (query-id corpus-id score).")
        qid, did, score = cols
        if n == 1 and not score.strip().lstrip("-").isdigit():
            continue  # header "query-id corpus-id score"
        try:
            rel = int(score)
        except ValueError:
            raise DataError(
                f"{path}:{n}: relevance {score!r} is not an integer (BEIR qrels grade 0, 1, 2, ...)."
            ) from None
        prev = qrels.setdefault(qid, {}).get(did)
        if prev is not None and prev != rel:
            raise DataError(f"{path}:{n}: {qid}->{did} judged both {prev} and {rel}.")
        n_dup += prev is not None
        qrels[qid][did] = rel
    return qrels, n_dup


def load_beir(
    folder: str | os.PathLike[str], split: str = "test", *, name: str | None = None
) -> RetrievalSet:
    """A BEIR-layout folder: corpus.jsonl[.gz], queries.jsonl[.gz], qrels/<split>.tsv."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"BEIR folder not found: {root}. {_FIX}")
    corpus_path = _find(root, ["corpus.jsonl", "corpus.jsonl.gz"], "BEIR corpus")
    queries_path = _find(root, ["queries.jsonl", "queries.jsonl.gz"], "BEIR queries")
    qrels_path = _find(root / "qrels", [f"{split}.tsv"], f"BEIR qrels for split {split!r}")
    corpus: dict[str, str] = {}
    for _, row in read_jsonl(corpus_path, ("_id",)):
        text = (str(row.get("title") or "") + " " + str(row.get("text") or "")).strip()
        _unique_put(corpus, str(row["_id"]), text, "document", corpus_path)
    if not corpus:
        raise DataError(f"Empty corpus: {corpus_path} holds no documents.")
    all_queries: dict[str, str] = {}
    for _, row in read_jsonl(queries_path, ("_id", "text")):
        if not str(row["text"]).strip():
            raise DataError(f"Query {row['_id']!r} in {queries_path} is empty or whitespace only.")
        _unique_put(all_queries, str(row["_id"]), str(row["text"]).strip(), "query", queries_path)

    qrels, n_dup = _read_qrels(qrels_path)
    unknown = sorted(set(qrels) - set(all_queries))
    if unknown:
        log.warning(
            "%s: %d judged query ids are missing from %s; dropped", root.name, len(unknown), queries_path
        )
    # keep queries with at least one relevant (> 0) judgement, in queries.jsonl order
    queries = {q: t for q, t in all_queries.items() if any(v > 0 for v in qrels.get(q, {}).values())}
    if not queries:
        raise DataError(f"No query in {queries_path} has a relevant judgement in {qrels_path}.")
    qrels = {q: qrels[q] for q in queries}
    n_missing_doc = sum(d not in corpus for r in qrels.values() for d in r)
    if n_missing_doc:
        log.warning("%s: %d judgements name documents missing from the corpus", root.name, n_missing_doc)
    stats = {
        "n_docs": len(corpus),
        "n_queries": len(queries),
        "n_queries_without_qrels": len(all_queries) - len(queries),
        "n_qrels_unknown_queries": len(unknown),
        "n_qrels_duplicate_lines": n_dup,
        "n_judgements_missing_doc": n_missing_doc,
    }
    revision = _fingerprint("beir", {"split": split}, [corpus_path, queries_path, qrels_path])
    return RetrievalSet(name or f"{root.name}/{split}", corpus, queries, qrels, None, revision, stats=stats)


def load_scifact(data_dir: str | os.PathLike[str] | None = None, split: str = "test") -> RetrievalSet:
    """SciFact (BEIR layout) from the shared data: 5,183 abstracts; test has 300 claims."""
    return load_beir(resolve_data_dir(data_dir) / "scifact_beir", split, name=f"scifact/{split}")


def _read_squad(path: str | os.PathLike[str] | None) -> tuple[Path, list[tuple[str, list[dict[str, Any]]]]]:
    """The file (default: the shared SQuAD v1.1 dev) and its (paragraph text, its qas) in file order."""
    if path is None:
        p = _find(resolve_data_dir() / "squad_v1.1", ["dev-v1.1.json.gz"], "SQuAD v1.1 dev")
    else:
        p = _find(Path(path).expanduser().parent, [Path(path).name], "SQuAD JSON")
    try:
        with (gzip.open if p.suffix == ".gz" else open)(p, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p} is not valid JSON ({exc.msg}).") from None
    paragraphs = [para for article in data.get("data", []) for para in article.get("paragraphs", [])]
    if not paragraphs:
        raise DataError(f"Empty corpus: {p} holds no SQuAD paragraphs.")
    return p, [(str(para["context"]), list(para.get("qas", []))) for para in paragraphs]


def load_squad_paragraphs(path: str | os.PathLike[str] | None = None) -> RetrievalSet:
    """SQuAD v1.1 question -> paragraph (``p00000``... in file order), with gold answers.
    Identical paragraphs merge into the first (``stats["n_duplicate_paragraphs"]``)."""
    p, paragraphs = _read_squad(path)
    by_text: dict[str, str] = {}  # paragraph -> its id
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    answers: dict[str, list[str]] = {}
    n_dup_para = 0
    for context, qas in paragraphs:
        n_dup_para += context in by_text
        pid = by_text.setdefault(context, f"p{len(by_text):05d}")
        for qa in qas:
            qid = str(qa["id"])
            _unique_put(queries, qid, str(qa["question"]).strip(), "question", p)
            qrels[qid] = {pid: 1}
            answers[qid] = list(dict.fromkeys(str(a["text"]) for a in qa.get("answers", [])))
    if n_dup_para:
        log.info("SQuAD: merged %d duplicate paragraphs", n_dup_para)
    corpus = {pid: text for text, pid in by_text.items()}
    n_no_answer = sum(not a for a in answers.values())
    stats = {"n_docs": len(corpus), "n_queries": len(queries), "n_duplicate_paragraphs": n_dup_para}
    stats["n_queries_without_answer"] = n_no_answer
    name, revision = f"squad/{p.name.split('.json')[0]}/q2p", _fingerprint("squad_q2p", {}, [p])
    return RetrievalSet(name, corpus, queries, qrels, answers, revision, stats=stats)


def load_squad_questions(path: str | os.PathLike[str] | None = None) -> RetrievalSet:
    """SQuAD v1.1 question -> question matching: same paragraph = relevant. A question
    alone on its paragraph is a document only; query ids are doc ids (``ignore_identical_ids``)."""
    p, paragraphs = _read_squad(path)
    corpus: dict[str, str] = {}
    groups: dict[str, list[str]] = {}  # paragraph text -> question ids
    for context, qas in paragraphs:
        ids = groups.setdefault(context, [])
        for qa in qas:
            _unique_put(corpus, str(qa["id"]), str(qa["question"]).strip(), "question", p)
            ids.append(str(qa["id"]))
    # ids are unique, so a question has others exactly when its paragraph has several
    qrels = {q: {o: 1 for o in ids if o != q} for ids in groups.values() if len(ids) > 1 for q in ids}
    queries = {q: corpus[q] for q in corpus if q in qrels}
    n_alone = len(corpus) - len(queries)
    if n_alone:
        log.info("SQuAD q2q: %d questions are alone on their paragraph: documents only", n_alone)
    name, revision = f"squad/{p.name.split('.json')[0]}/q2q", _fingerprint("squad_q2q", {}, [p])
    stats = {"n_docs": len(corpus), "n_queries": len(queries), "n_questions_alone": n_alone}
    return RetrievalSet(name, corpus, queries, qrels, None, revision, ignore_identical_ids=True, stats=stats)


def load_tatoeba(lang: str, data_dir: str | os.PathLike[str] | None = None) -> Bitext:
    """LASER's Tatoeba test set for ``lang`` (ISO 639-3, e.g. "deu") paired with English."""
    folder = resolve_data_dir(data_dir) / "tatoeba_laser" / "v1"
    src = _find(folder, [f"tatoeba.{lang}-eng.{lang}"], f"Tatoeba {lang} sentences")
    eng = _find(folder, [f"tatoeba.{lang}-eng.eng"], f"Tatoeba {lang}-eng English side")
    sentences, english = read_lines(src), read_lines(eng)
    if len(sentences) != len(english):
        raise DataError(
            f"Tatoeba {lang}: {len(sentences)} lines in {src.name} but {len(english)} in {eng.name}."
        )
    if not sentences:
        raise DataError(f"Tatoeba {lang}: {src} is empty.")
    return Bitext(lang, sentences, english, _fingerprint("tatoeba", {"lang": lang}, [src, eng]))


def mock_retrieval_set() -> RetrievalSet:
    """A tiny deterministic RAG set for tests: 8 docs, 4 queries, graded qrels. Queries share
    words with their relevant documents, so even a random tiny encoder has signal."""
    corpus = {
        "d0": "Cats are small domesticated felines that purr and hunt mice.",
        "d1": "A cat sleeps most of the day and purrs when content.",
        "d2": "Dogs are loyal companions that bark and fetch sticks.",
        "d3": "The Eiffel Tower in Paris was completed in 1889.",
        "d4": "Paris is the capital of France and home of the Louvre.",
        "d5": "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
        "d6": "Plants use chlorophyll to capture sunlight for photosynthesis.",
        "d7": "The stock market fell sharply on Monday morning.",
    }
    queries = {
        "q0": "Why do cats purr?",
        "q1": "When was the Eiffel Tower in Paris completed?",
        "q2": "How does photosynthesis use sunlight?",
        "q3": "What do dogs fetch?",
    }
    qrels = {"q0": {"d0": 2, "d1": 1}, "q1": {"d3": 2, "d4": 0}, "q2": {"d5": 2, "d6": 1}, "q3": {"d2": 1}}
    answers = {"q0": ["when content"], "q1": ["1889"], "q2": ["into sugar"], "q3": ["sticks"]}
    revision = hashlib.sha256(json.dumps([corpus, queries, qrels, answers], sort_keys=True).encode())
    stats = {"n_docs": len(corpus), "n_queries": len(queries)}
    return RetrievalSet("mock", corpus, queries, qrels, answers, revision.hexdigest()[:16], stats=stats)


def load_qa_pairs(
    path: str | os.PathLike[str],
    columns: Mapping[str, str | int | None] | None = None,
    *,
    name: str | None = None,
    delimiter: str | None = None,
    has_header: bool = True,
) -> RetrievalSet:
    """A CSV / TSV / JSONL file of (question, passage[, answer]) rows as a retrieval set: the corpus is
    the distinct passages (``p00000``... in first-seen order), each question's relevant document is its
    passage. A question on several rows is one query with every passage relevant and every answer gold."""
    cols = {"question": "question", "passage": "passage", "answer": None, **(columns or {})}
    wanted = [c for c in ("question", "passage", "answer") if cols[c] is not None]
    p = data_file(
        None, str(path), "QA pairs file", "or set data.file=<CSV / TSV / JSONL of question, passage rows>."
    )
    fix = f"Fix: set data.columns.<{'|'.join(wanted)}> to one of them (data.columns.answer=null: no answers)."
    by_passage: dict[str, str] = {}  # passage -> its id
    by_question: dict[str, str] = {}  # question -> its id
    qrels: dict[str, dict[str, int]] = {}
    answers: dict[str, list[str]] = {}
    n_rows = 0
    rows = table_rows(p, [cols[c] for c in wanted], fix, delimiter=delimiter, has_header=has_header)
    for values, where in rows:
        row = dict(zip(wanted, ("" if v is None else str(v).strip() for v in values), strict=True))
        for col in ("question", "passage"):
            if not row[col]:
                raise DataError(
                    f"{where}: the {col} (column {cols[col]!r}) is empty. Fix: fill or remove the row."
                )
        n_rows += 1
        pid = by_passage.setdefault(row["passage"], f"p{len(by_passage):05d}")
        qid = by_question.setdefault(row["question"], f"q{len(by_question):05d}")
        qrels.setdefault(qid, {})[pid] = 1
        if row.get("answer"):
            answers.setdefault(qid, []).append(row["answer"])
    if not n_rows:
        raise DataError(f"{p} holds no (question, passage) rows{' after its header' * has_header}.")
    corpus = {pid: text for text, pid in by_passage.items()}
    queries = {qid: text for text, qid in by_question.items()}
    gold = {q: list(dict.fromkeys(answers.get(q, []))) for q in queries} if "answer" in wanted else None
    stats = {"n_rows": n_rows, "n_docs": len(corpus), "n_queries": len(queries)}
    stats["n_queries_without_answer"] = (
        sum(not a for a in gold.values()) if gold is not None else len(queries)
    )
    params = {"columns": cols, "delimiter": delimiter, "has_header": has_header}
    revision = _fingerprint("qa_pairs", params, [p])
    return RetrievalSet(name or p.stem, corpus, queries, qrels, gold, revision, stats=stats)


def _beir_format(root: str | os.PathLike[str] | None, split: str, name: str | None) -> RetrievalSet:
    if root is None:
        raise DataError(f"data.format=beir needs data.root (a BEIR folder). {_FIX}")
    return load_beir(root, split, name=name)


def _qa_pairs_format(d: Mapping[str, Any]) -> RetrievalSet:
    if not d.get("file"):
        raise DataError(
            "data=qa_pairs needs data.file=<CSV / TSV / JSONL of question, passage[, answer] rows>."
        )
    path = under_root(d.get("root"), str(d["file"]))
    opts = {"delimiter": d.get("delimiter"), "has_header": bool(d.get("has_header", True))}
    return load_qa_pairs(path, d.get("columns"), name=d.get("name"), **opts)


# (root, split, name, the data section: format-specific keys such as qa_pairs' file and columns)
RETRIEVAL_FORMATS: dict[str, Callable[[Any, str, str | None, Mapping[str, Any]], RetrievalSet]] = {
    "beir": lambda root, split, name, d: _beir_format(root, split, name),
    "squad_paragraphs": lambda root, split, name, d: load_squad_paragraphs(root),
    "squad_questions": lambda root, split, name, d: load_squad_questions(root),
    "mock": lambda root, split, name, d: mock_retrieval_set(),
    "qa_pairs": lambda root, split, name, d: _qa_pairs_format(d),
}


def load_retrieval_set(
    fmt: str,
    root: str | os.PathLike[str] | None,
    *,
    split: str = "test",
    name: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> RetrievalSet:
    """Load a retrieval set by format name (what a `data/` config's ``format`` says); ``options``: the
    rest of the data section (qa_pairs reads ``file``, ``columns``, ``delimiter``, ``has_header``)."""
    if fmt not in RETRIEVAL_FORMATS:
        raise DataError(f"Unknown retrieval data format '{fmt}'. Choose one of {tuple(RETRIEVAL_FORMATS)}.")
    return RETRIEVAL_FORMATS[fmt](root, split, name, options or {})
