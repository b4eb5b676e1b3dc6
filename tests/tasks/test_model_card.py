"""A saved model loads in plain sentence-transformers with every weight its architecture expects, and
its README.md is a model card of the run: base model, data, objective, hyperparameters, metrics."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest


@pytest.mark.slow  # ~10 s: a one-batch fine-tune, then a load
def test_saved_model_loads_clean_and_has_a_model_card(
    make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    from embedlab.jobs import train

    overrides = ("model=tiny_bert", "data=lee", "logger=none", "debug=fast", "save_model=true")
    metrics, _ = train(make_cfg(*overrides, "embedding_cache=false"))
    folder = tmp_path / "model"
    hf_logger, verbosity = logging.getLogger("transformers"), hf_logging.get_verbosity()
    hf_logger.addHandler(caplog.handler)  # transformers' loggers do not propagate to the root
    hf_logging.set_verbosity_warning()
    try:
        model = SentenceTransformer(str(folder), device="cpu")
    finally:
        hf_logger.removeHandler(caplog.handler)
        hf_logging.set_verbosity(verbosity)
    assert not [r for r in caplog.records if "MISSING" in r.getMessage() or "LOAD REPORT" in r.getMessage()]
    assert model.encode(["a saved model"]).shape == (1, 32)

    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "tiny_bert fine-tuned on lee" in card and "**Base model:** [tiny_bert]" in card
    assert "- lee" in card and "`objective`: cosine" in card  # training data and objective
    for name in ("epochs", "batch_size", "learning_rate"):
        assert f"`{name}`:" in card
    assert "lee-validation" in card and "lee-test" in card and "spearman_cosine" in card  # metrics table
    for split in ("val", "test"):
        assert str(round(metrics[f"{split}/lee/spearman_cosine"], 4)) in card
