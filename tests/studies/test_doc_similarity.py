"""Document similarity: matrix, neighbours, most similar pair, heatmap, similarity functions
(checked against sentence-transformers), and the experiment script on a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.data.text_corpus import CorpusSpec, load_corpus
from embedlab.encode.encoder import Encoder
from embedlab.models.encoder import EncoderSpec, build_encoder
from embedlab.studies.doc_similarity import (
    SIMILARITY_FUNCTIONS,
    doc_similarity_report,
    most_similar_pair,
    nearest_neighbours,
    neighbour_label_agreement,
    paired_similarity,
    similarity_matrix,
    similarity_spearman,
)
from embedlab.viz.plots import plot_similarity_heatmap

ROOT = Path(__file__).resolve().parents[2]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tiny_model_dirs):
    model, _ = build_encoder(
        EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs["bert"]), max_seq_length=64)
    )
    return model


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return list(load_corpus(CorpusSpec(name="lee", max_texts=12)).texts)


def test_duplicate_is_the_top_neighbour_and_the_matrix_is_cosine(tiny, docs: list[str]) -> None:
    from sentence_transformers.util import cos_sim

    texts = [*docs, docs[3]]  # the last document duplicates document 3
    report = doc_similarity_report(Encoder(tiny), texts, query=3, k=4)
    sim, dup = report.matrix, len(texts) - 1
    assert report.neighbours[0][0] == dup and report.neighbours[0][1] == pytest.approx(1.0, abs=1e-6)
    assert nearest_neighbours(sim, dup, k=1)[0][0] == 3
    assert 3 not in [i for i, _ in report.neighbours[1:]] and len(report.neighbours) == 4
    assert report.pair[:2] == (3, dup)
    np.testing.assert_array_equal(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), np.ones(len(texts)))
    emb = tiny.encode(texts, convert_to_tensor=True)
    np.testing.assert_allclose(sim, cos_sim(emb, emb).numpy(), atol=1e-5)  # the library's cosine
    scores = [score for _, score in report.neighbours]
    assert scores == sorted(scores, reverse=True)
    record = report.as_dict()
    assert record["neighbours"][0]["index"] == dup and record["n_docs"] == len(texts)


def test_pair_and_neighbours_on_a_known_matrix() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [-1.0, 0.0]])
    sim = similarity_matrix(emb)
    assert most_similar_pair(sim)[:2] == (0, 2)
    assert [i for i, _ in nearest_neighbours(sim, 0, k=3)] == [2, 1, 3]
    assert sim[0, 3] == pytest.approx(-1.0)
    # nearest neighbours: 0->2, 1->2, 2->0, 3->1 (cosine 0 beats -1); labels agree for 0, 2
    assert neighbour_label_agreement(sim, ["a", "b", "a", "c"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="query index 9 is outside the 4 documents"):
        nearest_neighbours(sim, 9)
    with pytest.raises(ValueError, match="2-D"):
        similarity_matrix(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        similarity_matrix(np.array([[np.nan, 1.0], [1.0, 0.0]]))


def test_heatmap_is_written(tmp_path: Path) -> None:
    sim = similarity_matrix(np.random.default_rng(0).normal(size=(9, 5)))
    path = plot_similarity_heatmap(sim, tmp_path / "h.png", labels=list("aabbbcccc"), title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2 labels for 9 documents"):
        plot_similarity_heatmap(sim, tmp_path / "x.png", labels=["a", "b"])


def test_similarity_functions_match_sentence_transformers_evaluator(tiny_model_dirs) -> None:
    """Spearman of each similarity function equals EmbeddingSimilarityEvaluator's, unnormalised."""
    from sentence_transformers.evaluation import EmbeddingSimilarityEvaluator

    from embedlab.data.sts import STSSpec, load_sts

    split = load_sts(STSSpec(name="lee", format="lee", score_range=(0.0, 1.0), max_pairs_per_split=60),
                     splits=("validation",)).splits["validation"]  # fmt: skip
    model, _ = build_encoder(EncoderSpec(name="tiny", name_or_path=str(tiny_model_dirs["bert"]),
                                         max_seq_length=64, normalize=False))  # fmt: skip
    a = model.encode(list(split.sentence1), convert_to_numpy=True)
    b = model.encode(list(split.sentence2), convert_to_numpy=True)
    ours = similarity_spearman(a, b, split.scores)

    class SameEmbeddings(EmbeddingSimilarityEvaluator):
        """The evaluator scores ``a`` and ``b`` themselves: a second encode may round differently (MKL
        is not bitwise reproducible across calls) and flip the random tiny model's near-tied scores."""

        def embed_inputs(self, model, sentences, **kwargs):  # type: ignore[no-untyped-def]
            return a if sentences == self.sentences1 else b

    evaluator = SameEmbeddings(list(split.sentence1), list(split.sentence2), list(split.scores),
                               similarity_fn_names=list(SIMILARITY_FUNCTIONS), name="lee")  # fmt: skip
    reference = evaluator(model)
    for fn in SIMILARITY_FUNCTIONS:
        assert ours[f"spearman_{fn}"] == pytest.approx(reference[f"lee_spearman_{fn}"], abs=1e-6), fn
    assert ours["spearman_cosine"] != pytest.approx(
        ours["spearman_dot"], abs=1e-6
    )  # unnormalised: they differ
    unit = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    normed = similarity_spearman(*unit, split.scores)  # on unit vectors all four rank alike but manhattan
    assert normed["spearman_dot"] == pytest.approx(normed["spearman_cosine"], abs=1e-9)
    assert normed["spearman_euclidean"] == pytest.approx(normed["spearman_cosine"], abs=1e-9)
    with pytest.raises(ValueError, match="Unknown similarity function"):
        paired_similarity(a, b, "jaccard")  # type: ignore[arg-type]


@pytest.mark.slow  # a fresh interpreter loading torch: ~30 s on a busy 2-core machine
def test_experiment_script_on_a_tiny_model(tmp_path: Path) -> None:
    script = ROOT / "experiments" / "document_similarity" / "doc_similarity.py"
    cmd = [sys.executable, str(script), "--model", "tiny_bert", "--data", "mlm_lee", "--max-texts", "15",
           "--query", "2", "--k", "3", "--out", str(tmp_path)]  # fmt: skip
    env = {"OMP_NUM_THREADS": "1", "EMBEDLAB_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}  # a checkout's src/ first  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "tiny_bert_lee_background.json").read_text())
    assert record["query"]["index"] == 2 and len(record["neighbours"]) == 3 and record["n_docs"] == 15
    assert (tmp_path / "tiny_bert_lee_background_heatmap.png").stat().st_size > 0
