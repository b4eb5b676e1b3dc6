"""``embedlab.config.compose_specs``: the specs experiments/ scripts build models and data from,
composed from configs/ exactly as the entry scripts compose them."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedlab.config import compose_specs
from embedlab.data.text_corpus import CorpusSpec
from embedlab.errors import ConfigError
from embedlab.models.encoder import EncoderSpec


def test_model_and_corpus_specs_match_the_configs() -> None:
    specs = compose_specs(["model=minilm", "pooling=cls", "encode.threads=1"])
    assert specs.model == EncoderSpec(
        name="minilm", name_or_path="sentence-transformers/all-MiniLM-L6-v2", packaged="minilm", pooling="cls"
    )
    assert specs.encode.settings.threads == 1 and not specs.run.fit
    medical = compose_specs(["data=medical", "data.max_texts=10", "paths.data_dir=/data"], check=False).data
    assert medical == CorpusSpec(
        name="medical",
        format="table",
        root="/data",
        file="medical_abstracts/medical_tc_test.csv",
        text_column="medical_abstract",
        label_column="condition_label",
        label_names_file="medical_abstracts/medical_tc_labels.csv",
        max_texts=10,
    )
    with pytest.raises(ConfigError, match="MLM corpus"):  # checked like evaluate.py unless check=False
        compose_specs(["data=medical"])


def test_missing_configs_folder_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import embedlab.config.specs as specs_module

    monkeypatch.setattr(specs_module, "CONFIGS", tmp_path)
    with pytest.raises(ConfigError, match="No evaluate.yaml"):
        compose_specs([])


def test_the_composed_model_builds_and_reloads_when_saved(tmp_path: Path) -> None:
    import numpy as np

    from embedlab.tasks.model import build_model

    model, resolved = build_model(compose_specs(["model=tiny_bert"]))
    assert resolved.source == "tiny:bert" and model.max_seq_length == 64
    model.save(str(tmp_path / "model"))
    again, resolved = build_model(compose_specs(["model=saved", f"model.name_or_path={tmp_path / 'model'}"]))
    assert resolved.source == "local"
    np.testing.assert_allclose(again.encode(["a short text"]), model.encode(["a short text"]), atol=1e-6)
