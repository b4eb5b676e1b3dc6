"""The plain builders experiments/ call: config files read as data, mapped onto the same specs
that evaluate.py builds, without composing a Hydra config."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedlab.data.text_corpus import CorpusSpec
from embedlab.errors import ConfigError
from embedlab.models.encoder import EncoderSpec
from embedlab.studies.inputs import corpus_spec, load_model, read_config, spec_from_mapping

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_read_config_fills_plain_placeholders(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("root: ${paths.data_dir}/x\nseed: ${seed}\nother: ${oc.env:HOME}\n")
    got = read_config(tmp_path / "c.yaml", {"paths.data_dir": "/d", "seed": 7})
    assert got == {"root": "/d/x", "seed": 7, "other": "${oc.env:HOME}"}  # unknown ones stay visible
    with pytest.raises(ConfigError, match="No config file"):
        read_config(tmp_path / "missing.yaml")


def test_model_and_corpus_specs_match_the_configs() -> None:
    m = read_config(CONFIGS / "model" / "minilm.yaml")
    spec = spec_from_mapping(EncoderSpec, m, pooling="cls")  # from_saved_modules is not a field: dropped
    assert spec == EncoderSpec(
        name="minilm", name_or_path=m["name_or_path"], packaged="minilm", pooling="cls"
    )
    medical = corpus_spec("medical", CONFIGS, "/data", max_texts=10)
    assert medical == CorpusSpec(name="medical", format="table", root="/data",
                                 file="medical_abstracts/medical_tc_test.csv", text_column="medical_abstract",
                                 label_column="condition_label", label_names_file="medical_abstracts/medical_tc_labels.csv",
                                 max_texts=10)  # fmt: skip
    with pytest.raises(ConfigError, match="not a document corpus"):
        corpus_spec("stsb", CONFIGS, "/data")


def test_load_model_builds_the_config_model() -> None:
    model, resolved = load_model("tiny_bert", CONFIGS, normalize=False)
    assert resolved.source == "tiny:bert" and model.max_seq_length == 64 and len(model) == 2  # no Normalize
    with pytest.raises(ConfigError, match="not a transformer"):
        load_model("fasttext", CONFIGS)
    with pytest.raises(ConfigError, match="needs a model folder"):
        load_model("saved", CONFIGS)


def test_load_model_reads_a_saved_folder(tmp_path: Path) -> None:
    import numpy as np

    model, _ = load_model("tiny_bert", CONFIGS)
    model.save(str(tmp_path / "model"))
    again, resolved = load_model("saved", CONFIGS, name_or_path=str(tmp_path / "model"))
    assert resolved.source == "local"
    np.testing.assert_allclose(again.encode(["a short text"]), model.encode(["a short text"]), atol=1e-6)
