"""Checks of retrieval inputs and the trec qrels they leave: what gets scored, and why not.

Every metric entry point of ``eval/retrieval.py`` runs :func:`prepare_judgements` first, so bad
input is reported the same way whatever the ranking came from, and every skip is counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

import numpy as np

from embedlab.errors import DataError

log = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]
MissingDocPolicy = Literal["error", "drop", "keep"]
NdcgGain = Literal["binary", "graded"]
COUNTS = (  # the skip counts every RetrievalMetrics carries
    "n_queries_skipped_no_qrels",
    "n_queries_skipped_no_relevant",
    "n_qrels_queries_unknown",
    "n_judgements_missing_doc",
    "n_judgements_identical",
)


class RankingKwargs(TypedDict, total=False):
    """The keyword options of every metric entry point, defaults as in :class:`RankingOptions`."""

    ignore_identical_ids: bool
    missing_doc_policy: MissingDocPolicy
    ndcg_gain: NdcgGain
    per_query: bool


@dataclass(frozen=True)
class RankingOptions:
    """How to score: cut-offs, identical-id and missing-document policies, nDCG gains."""

    ks: tuple[int, ...]
    ignore_identical_ids: bool = False
    missing_doc_policy: MissingDocPolicy = "error"
    ndcg_gain: NdcgGain = "binary"
    per_query: bool = False  # also keep every query's metrics

    def check(self) -> None:
        if self.missing_doc_policy not in ("error", "drop", "keep"):
            raise ValueError(
                f"missing_doc_policy must be 'error', 'drop' or 'keep', got {self.missing_doc_policy!r}"
            )
        if self.ndcg_gain not in ("binary", "graded"):
            raise ValueError(f"ndcg_gain must be 'binary' or 'graded', got {self.ndcg_gain!r}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"ks must be a non-empty list of positive integers, got {list(self.ks)}")


@dataclass
class Judged:
    """The scored queries' trec qrels, their rows, the exclusions, and the skip counts."""

    query_ids: list[str]
    doc_ids: list[str]
    exclude: np.ndarray | None  # (Q,) doc index equal to the query id, or -1
    ks_clamped: tuple[int, ...]
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (Qs,) scored rows
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # doc id -> gain (0 = not relevant)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    missing_examples: list[str] = field(default_factory=list)

    @property
    def scored(self) -> list[str]:
        """The ids of the scored queries, in input order."""
        return [self.query_ids[p] for p in self.positions]


def _check_unique(ids: Sequence[str], what: str) -> None:
    dups = [i for i, n in Counter(ids).items() if n > 1]
    if dups:
        raise DataError(f"Duplicate {what} ids ({len(dups)} repeats, e.g. {dups[:3]}); ids must be unique.")


def _gain(relevance: Any, mode: NdcgGain) -> int:
    """trec_eval gain of one judgement: 0 if not relevant, 1 (binary) or the relevance (graded)."""
    r = float(relevance)
    if r <= 0:
        return 0
    if mode == "binary":
        return 1
    if r != int(r):
        raise DataError(f"Graded nDCG needs integer relevance levels (trec_eval), got {relevance!r}.")
    return int(r)


def _judgements(
    qid: str, judged: Mapping[str, Any], doc_index: Mapping[str, int], opts: RankingOptions, prep: Judged
) -> dict[str, int]:
    """One query's trec qrels after the identical-id and missing-document policies."""
    out: dict[str, int] = {}
    for did, r in judged.items():
        did = str(did)
        if opts.ignore_identical_ids and did == qid:
            prep.counts["n_judgements_identical"] += 1
            continue
        if did not in doc_index:
            prep.counts["n_judgements_missing_doc"] += 1
            if len(prep.missing_examples) < 3:
                prep.missing_examples.append(f"{qid}->{did}")
            if opts.missing_doc_policy == "drop":
                continue
        out[did] = _gain(r, opts.ndcg_gain)
    return out


def _report(prep: Judged, opts: RankingOptions) -> None:
    """Raise on what cannot be scored; log what was skipped."""
    c = prep.counts
    if c["n_judgements_missing_doc"] and opts.missing_doc_policy == "error":
        raise DataError(
            f"{c['n_judgements_missing_doc']} judgements name documents that are not in the corpus "
            f"(e.g. {prep.missing_examples}). Usually the corpus or the qrels split is wrong. Fix: pass the full "
            "corpus, or set missing_doc_policy='drop' (forget those judgements) or 'keep' (count them as "
            "relevant but unretrievable, as trec_eval and sentence-transformers do)."
        )
    if c["n_judgements_missing_doc"]:
        log.warning(
            "%d judgements name documents missing from the corpus (e.g. %s); policy=%s",
            c["n_judgements_missing_doc"],
            prep.missing_examples,
            opts.missing_doc_policy,
        )
    if c["n_queries_skipped_no_qrels"]:
        log.info("Skipped %d queries without judgements", c["n_queries_skipped_no_qrels"])
    if c["n_queries_skipped_no_relevant"]:
        log.warning("Skipped %d queries without any relevant judgement", c["n_queries_skipped_no_relevant"])
    if not len(prep.positions):
        raise DataError(
            f"No query can be scored: {len(prep.query_ids)} queries, {c['n_queries_skipped_no_qrels']} without "
            f"judgements, {c['n_queries_skipped_no_relevant']} without a relevant one. Check that the query ids "
            "match the qrels ids."
        )
    if prep.ks_clamped:
        n = len(prep.doc_ids) - (1 if prep.exclude is not None and (prep.exclude >= 0).any() else 0)
        msg = (
            "k=%s exceed the %d retrievable documents: ranking depth clamped; precision@k still divides by k"
        )
        log.warning(msg, list(prep.ks_clamped), n)


def prepare_judgements(
    query_ids: Sequence[str], doc_ids: Sequence[str], qrels: Qrels, opts: RankingOptions
) -> Judged:
    """Check ids and policies, build the trec qrels of every scorable query, count the rest."""
    opts.check()
    qids, dids = [str(q) for q in query_ids], [str(d) for d in doc_ids]
    if not dids:
        raise DataError("Empty corpus: no documents to retrieve from.")
    _check_unique(qids, "query")
    _check_unique(dids, "document")
    doc_index = {d: i for i, d in enumerate(dids)}
    n_eligible = len(dids) - (opts.ignore_identical_ids and bool(set(qids) & set(dids)))
    prep = Judged(
        qids,
        dids,
        exclude=np.asarray([doc_index.get(q, -1) for q in qids]) if opts.ignore_identical_ids else None,
        ks_clamped=tuple(sorted({k for k in opts.ks if k > n_eligible})),
    )
    positions = []
    for pos, qid in enumerate(qids):
        judged = qrels.get(qid)
        gains = _judgements(qid, judged, doc_index, opts, prep) if judged else {}
        if not judged:
            prep.counts["n_queries_skipped_no_qrels"] += 1
        elif not any(gains.values()):
            prep.counts["n_queries_skipped_no_relevant"] += 1
        else:
            positions.append(pos)
            prep.qrels[qid] = gains
    prep.positions = np.asarray(positions, dtype=np.int64)
    prep.counts["n_qrels_queries_unknown"] = len(set(map(str, qrels)) - set(qids))
    _report(prep, opts)
    return prep
